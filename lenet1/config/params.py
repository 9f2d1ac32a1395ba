"""Read and validate ``params.yaml`` before any stage does work.

DVC's ``exp run --set-param +train.lrr=0.1`` adds a key that does not exist, and
no stage but validate reads it, so such a typo would otherwise be ignored.  Each section is a
frozen dataclass in ``lenet1.config.data`` and ``lenet1.config.learning``; each field carries its ``Rule``, and a
choice's rule reads the list of values the code implements.  This module only checks values against those rules:
unknown, missing, mistyped or out-of-range values are a ``ParamsError`` naming the key.
A stage loads the sections it uses; the validate stage loads them all.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from collections.abc import Callable

import yaml

from lenet1.errors import InputError

MAX_SEED = 2**32 - 1
Section = TypeVar("Section")


class ParamsError(InputError):
    """A value in params.yaml is unknown, missing, of the wrong type or out of range."""


@dataclass(frozen=True)
class Rule:
    kind: str  # "int", "float", "bool", "str", "str_list"
    check: Callable[[Any], bool] = lambda value: True
    expect: str = ""


def param(rule: Rule) -> Any:
    """A dataclass field validated by ``rule`` (a required field: params.yaml must give it)."""
    return dataclasses.field(metadata={"rule": rule})


def integer(low: int, high: int, note: str = "") -> Rule:
    return Rule("int", lambda v: low <= v <= high, f"an integer in [{low}, {high}]" + (f" ({note})" if note else ""))


def number(check: Callable[[float], bool], expect: str) -> Rule:
    return Rule("float", check, expect)


def choice(options: tuple[str, ...]) -> Rule:
    return Rule("str", lambda v: v in options, "one of " + ", ".join(options))


def flag() -> Rule:
    return Rule("bool", expect="true or false")


def distinct_subset(options: tuple[str, ...]) -> Rule:
    return Rule(
        "str_list",
        lambda v: len(v) > 0 and len(set(v)) == len(v) and set(v) <= set(options),
        "a non-empty list of distinct values from " + ", ".join(options),
    )


def seed_rule(note: str = "") -> Rule:
    return integer(0, MAX_SEED, note)


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


def _number_text(value: Any) -> float | None:
    """A finite number that YAML 1.1 (PyYAML) read as text: ``1e-05``, as DVC's -S writes 0.00001, or ``1e-5``
    (YAML 1.1 wants a dot and a signed exponent; YAML 1.2, which DVC reads, does not).  None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _section_errors(raw: dict, name: str, cls: type, source: str) -> tuple[list[str], dict[str, Any]]:
    values = raw.get(name)
    if not isinstance(values, dict):
        return [f"{source}: section '{name}' is missing or not a mapping"], {}
    fields = {field.name: field.metadata["rule"] for field in dataclasses.fields(cls)}
    errors = [
        f"{source}: unknown key '{name}.{key}' (known: {', '.join(fields)}); check its spelling"
        for key in values
        if key not in fields
    ]
    typed: dict[str, Any] = {}
    for key, rule in fields.items():
        value = values.get(key)
        if rule.kind == "float" and (number := _number_text(value)) is not None:
            value = number
        if key not in values:
            errors.append(f"{source}: missing key '{name}.{key}': expected {rule.expect}")
        elif not _has_kind(value, rule.kind) or not rule.check(value):
            errors.append(f"{source}: bad value for '{name}.{key}': got {values[key]!r}, expected {rule.expect}")
        else:
            typed[key] = float(value) if rule.kind == "float" else tuple(value) if rule.kind == "str_list" else value
    return errors, typed


def validate(
    raw: Any, sections: dict[str, type], source: str = "params.yaml", *, complete: bool = False
) -> dict[str, Any]:
    """Each of ``sections`` (name -> dataclass) checked and typed: floats as ``float``, lists as tuples.

    ``complete``: ``sections`` are all there are, so any other section in ``raw`` is an error.
    Raises one ``ParamsError`` naming every bad key.
    """
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections ({', '.join(sections)}), got {type(raw).__name__}")
    errors = [
        f"{source}: unknown section '{name}' (known: {', '.join(sections)})"
        for name in raw
        if complete and name not in sections
    ]
    result = {}
    for name, cls in sections.items():
        section_errors, typed = _section_errors(raw, name, cls, source)
        errors += section_errors
        if not section_errors:
            result[name] = cls(**typed)
    if errors:
        raise ParamsError("\n".join(errors))
    return result


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error (YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a plain name, not a {type(key).__name__}", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one mapping; keep one", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_params(path: str | Path = "params.yaml") -> Any:
    """The parsed params file, unchecked; ``ParamsError`` if it is missing or not YAML."""
    path = Path(path)
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found; run from the repository root") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    except UnicodeDecodeError:
        raise ParamsError(f"{path}: not UTF-8 text; save it as UTF-8") from None


def load_section(path: str | Path, name: str, cls: type[Section]) -> Section:
    """One section of a params file, validated: ``load_section("params.yaml", "train", TrainParams)``."""
    return validate(read_params(path), {name: cls}, str(path))[name]
