"""The model file: the weights, the train params that made them, and a header saying which network
(architecture), engine and format made them, checked when the file is read (as llm.c's checkpoint header)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from lenet1.engine import ENGINES, ExactEngine, StockEngine
from lenet1.errors import InputError, MissingInput, load_failure
from lenet1.architecture import LOSSES, VARIANTS
from lenet1.model import LeNet1
from lenet1.outputs import save_torch
from lenet1.config.data import INPUTS

# Format 3: the header names the engine, its version and the architecture.  A file of any other format
# (one without a "format" key counts as 1) is refused with the way out: retrain.
MODEL_FORMAT = 3
RETRAIN = "retrain it with `dvc repro -f -s train`"


def architecture_record(model: LeNet1) -> dict:
    return {
        key: [list(row) for row in value] if key == "h3_table" else value
        for key, value in dataclasses.asdict(model.architecture).items()
    }


def save_model(
    path: str | Path,
    model: LeNet1,
    params: dict,
    best_epoch: int,
    engine: ExactEngine | StockEngine,
    input_kind: str = "mnist28",
) -> None:
    """The weights, the train params that made them, the engine, the file format and, unless it is MNIST's own
    digits (as the split files, so that a default model's bytes stay), the input it was trained on; byte-stably."""
    header = {
        "format": MODEL_FORMAT,
        "engine": engine.name,
        "engine_version": engine.version,
        "architecture": architecture_record(model),
        **({"input": input_kind} if input_kind != "mnist28" else {}),
    }
    save_torch(path, {**header, "state_dict": model.state_dict(), "params": params, "best_epoch": best_epoch})


def _refuse(path: Path, why: str) -> InputError:
    return InputError(f"{path}: {why}; {RETRAIN}")


def load_model(path: str | Path) -> tuple[LeNet1, dict, str]:
    """The model saved by the train stage, the train params that made it (with "input": the split's input it
    was trained on) and the engine that made it."""
    path = Path(path)
    try:
        saved = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise MissingInput(f"{path}: not found; run `dvc repro train` first") from None
    except Exception as err:
        raise _refuse(path, f"not a readable model file ({load_failure(err)})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("params"), dict) or "state_dict" not in saved:
        raise _refuse(path, "not a model file written by the train stage")
    if saved.get("format") != MODEL_FORMAT:
        raise _refuse(
            path,
            f"model format {saved.get('format', 1)}, this code reads format {MODEL_FORMAT} "
            "(the engine and architecture in its header)",
        )
    params, engine = {**saved["params"], "input": saved.get("input", "mnist28")}, saved.get("engine")
    if params["input"] not in INPUTS:
        raise _refuse(path, f"unknown input {params['input']!r} (expected one of {', '.join(INPUTS)})")
    if params.get("variant") not in VARIANTS:
        raise _refuse(path, f"unknown variant {params.get('variant')!r}")
    if params.get("loss") not in LOSSES:
        raise _refuse(path, f"unknown loss {params.get('loss')!r} (expected one of {', '.join(LOSSES)})")
    if engine not in ENGINES:
        raise _refuse(path, f"unknown engine {engine!r} (expected one of {', '.join(ENGINES)})")
    model = LeNet1(params["variant"])
    if saved.get("architecture") != architecture_record(model):
        raise _refuse(
            path,
            f"made by another LeNet-1 '{params['variant']}' than lenet1/model.py defines now "
            f"({saved.get('architecture')})",
        )
    _load_weights(path, model, saved["state_dict"])
    model.eval()
    return model, params, engine


def _load_weights(path: Path, model: LeNet1, state: dict) -> None:
    expected = model.state_dict()
    if not isinstance(state, dict) or set(state) != set(expected):
        raise _refuse(
            path,
            f"its weights {sorted(state) if isinstance(state, dict) else state!r} are not "
            f"LeNet-1 '{model.variant}''s {sorted(expected)}",
        )
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or tensor.shape != expected[name].shape:
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise _refuse(
                path,
                f"weights do not fit LeNet-1 '{model.variant}': {name} is {shape}, "
                f"expected {tuple(expected[name].shape)}",
            )
        if not torch.isfinite(tensor).all():
            raise _refuse(path, f"{name} holds NaN or infinite weights (a diverged training)")
    model.load_state_dict(state)
