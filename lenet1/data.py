"""Load the prepared splits as in-memory tensors ready for the model."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from lenet1.errors import InputError, MissingInput
from lenet1.params import INPUTS

# The mean and standard deviation of MNIST's training pixels (scaled to 0..1),
# the usual normalisation (as in PyTorch's MNIST example).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
REBUILD = "rebuild it with `dvc repro -f -s split`"


class Digits(NamedTuple):
    images: torch.Tensor  # uint8 (N, 28, 28)
    labels: torch.Tensor  # int64 (N,)
    input: str  # mnist28 or paper16 (lenet1.inputs)


def load_split(path: Path) -> Digits:
    """The images, labels and input kind of a file written by ``split.write_splits``."""
    try:
        data = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise MissingInput(f"{path}: not found; run `dvc repro split` first") from None
    except Exception as err:  # a truncated or foreign file: say which and how to fix it
        raise InputError(f"{path}: not a readable split file ({err}); {REBUILD}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: holds a {type(data).__name__}, not a split; {REBUILD}")
    images, labels = data.get("images"), data.get("labels")
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 3 or images.shape[1:] != (28, 28):
        raise InputError(f"{path}: 'images' must be a uint8 tensor of shape (N, 28, 28); {REBUILD}")
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
        raise InputError(f"{path}: 'labels' must be an int64 tensor with one label per image; {REBUILD}")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise InputError(f"{path}: labels must be digits 0-9, found {labels.min()}..{labels.max()}; {REBUILD}")
    kind = data.get("input", "mnist28")
    if kind not in INPUTS:
        raise InputError(f"{path}: unknown input {kind!r}; {REBUILD}")
    return Digits(images, labels, kind)


def to_inputs(images: torch.Tensor, kind: str = "mnist28") -> torch.Tensor:
    """Float32 model inputs of shape (N, 1, 28, 28): mnist28 standardised, paper16 in [-1, 1] (background -1)."""
    if kind == "paper16":
        return (images.float() / 127.5 - 1.0).unsqueeze(1).contiguous()
    return ((images.float() / 255.0 - MNIST_MEAN) / MNIST_STD).unsqueeze(1).contiguous()
