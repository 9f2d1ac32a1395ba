"""The learning sections of params.yaml, ``train`` and ``evaluate`` (rules: ``params.py``), and the limits
between sections that no single key's rule can check.

Torch- and numpy-free, so that the validate stage, which runs before every experiment, starts at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from lenet1.architecture import LOSSES, VARIANTS
from lenet1.config.data import MNIST_TRAIN_SIZE
from lenet1.config.params import choice, flag, integer, number, param, seed_rule

INITS = ("inverse_sqrt", "lecun98")  # the allowed train.init values, implemented by lenet1.model.init_bound
SCHEDULES = (
    "constant",
    "step",
    "cosine",
    "lecun98",
)  # the allowed train.schedule values, implemented by train.learning_rates
OPTIMIZERS = ("sgd", "sdlm")  # the allowed train.optimizer values, implemented by lenet1.train (sdlm: lenet1.curvature)


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
        errors.append(
            f"train.train_subset is {train.train_subset}, more than the {MNIST_TRAIN_SIZE - split.val_size} "
            f"digits the training split holds ({MNIST_TRAIN_SIZE} - split.val_size {split.val_size}): "
            "lower it, or 0 for all"
        )
    return errors
