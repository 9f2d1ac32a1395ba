"""The two training losses, in torch: the definition the exact engine's losses are tested against."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

from lenet1.architecture import LOSSES
from lenet1.model import LeNet1

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
GUESS = {"cross_entropy": math.log(10), "mse": 1.0}  # each loss of all-zero outputs: a network that guesses


def make_loss(name: str, model: LeNet1) -> Loss:
    """Cross-entropy on the outputs, or the paper's MSE between squashed outputs and +-1 targets
    (the mean over every output of every digit)."""
    if name == "cross_entropy":
        return F.cross_entropy
    if name == "mse":

        def mse(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            targets = F.one_hot(labels, outputs.shape[1]).to(outputs.dtype) * 2 - 1
            error = model.squash(outputs) - targets
            return (error * error).mean()

        return mse
    raise ValueError(f"unknown loss {name!r}: expected one of {', '.join(LOSSES)}")
