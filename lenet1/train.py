"""Train LeNet-1 with plain SGD on in-memory tensors.

Batches are index_select calls on tensors that hold the whole split (MNIST
is 47 MB), not a per-sample Dataset/DataLoader: at LeNet-1's size the
per-sample Python work would cost more than the network.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Iterator

import torch

from lenet1 import curvature
from lenet1.engine import ExactEngine, StockEngine, make_engine
from lenet1.errors import InputError
from lenet1.loss import GUESS
from lenet1.model import LeNet1, build_model
from lenet1.config.learning import SCHEDULES, TrainParams

Log = Callable[[str], None]
Engine = ExactEngine | StockEngine


class TrainingDiverged(InputError):
    """The loss became infinite, NaN or absurd: the learning rate is too high for this run."""


DIVERGED = 100  # an epoch's mean loss this many times a guess's (loss.GUESS) is divergence, not learning


@dataclass
class Split:
    inputs: torch.Tensor  # float32 (N, 1, 28, 28)
    labels: torch.Tensor  # int64 (N,)


# The paper's eta schedule for LeNet-5's 20 passes (LeCun et al. 1998, Appendix C): 0.0005 for two passes,
# then 0.0002 for three, 0.0001 for three, 0.00005 for four, 0.00001 thereafter: lr times these from those epochs.
LECUN98 = ((1, 1.0), (3, 0.4), (6, 0.2), (9, 0.1), (13, 0.02))


def learning_rates(schedule: str, lr: float, epochs: int, step_size: int, gamma: float) -> list[float]:
    """Each epoch's learning rate: constant, step (x gamma every step_size epochs), cosine to 0 or lecun98.

    The same floats as torch's ConstantLR, StepLR and CosineAnnealingLR (recursive form), without torch.optim.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    if schedule == "lecun98":
        return [lr * [factor for start, factor in LECUN98 if start <= epoch][-1] for epoch in range(1, epochs + 1)]
    rates = [lr]
    for epoch in range(1, epochs):
        if schedule == "cosine":
            factor = (1 + math.cos(math.pi * epoch / epochs)) / (1 + math.cos(math.pi * (epoch - 1) / epochs))
        else:
            factor = gamma if schedule == "step" and epoch % step_size == 0 else 1.0
        rates.append(rates[-1] * factor)
    return rates


@dataclass
class TrainResult:
    model: LeNet1  # the weights of the best validation epoch
    engine: Engine  # the engine that trained it
    best_epoch: int
    history: list[dict[str, Any]]  # one row per epoch
    seconds: float


def engine_for(params: TrainParams, model: LeNet1, train: Split) -> Engine:
    """Deterministic mode's exact engine (which first proves on the first training digits that it computes
    ``model``, or refuses) or stock PyTorch."""
    return make_engine("exact" if params.deterministic else "stock", model, params.loss, train.inputs, train.labels)


def sdlm_rates(params: TrainParams, train: Split, order: torch.Tensor, engine: Engine) -> dict[str, torch.Tensor]:
    """Stochastic diagonal Levenberg-Marquardt's per-weight rates for an epoch, from the curvature on its first
    ``curvature.PATTERNS`` digits (``lenet1/curvature.py``)."""
    sample = order[: curvature.PATTERNS]
    h = engine.curvature(train.inputs.index_select(0, sample), train.labels.index_select(0, sample))
    return curvature.step_rates(h, params.mu, params.loss)


def sgd_epochs(
    params: TrainParams, train: Split, engine: Engine
) -> Iterator[tuple[int, float, float, float, dict[str, float]]]:
    """Train for ``params.epochs``; after each epoch yield (epoch, its lr, train loss, train accuracy, more),
    more being, for sdlm, the range of its effective rates lr / (mu + h_kk) at the paper's loss scale.

    The batch order of every epoch comes from one generator seeded with ``params.seed``.
    """
    rates = learning_rates(params.schedule, params.lr, params.epochs, params.step_size, params.gamma)
    order_generator = torch.Generator().manual_seed(params.seed)
    for epoch, lr in enumerate(rates, 1):
        order = torch.randperm(len(train.labels), generator=order_generator)
        weight_rates, more = None, {}
        if params.optimizer == "sdlm":
            weight_rates = sdlm_rates(params, train, order, engine)
            every = (
                torch.cat([rate.flatten() for rate in weight_rates.values()]).double()
                * lr
                / curvature.SCALE[params.loss]
            )
            more = {"rate_min": every.min().item(), "rate_max": every.max().item()}
        train_loss, train_acc = engine.train_epoch(
            train.inputs, train.labels, order, params.batch_size, lr, params.weight_decay, weight_rates
        )
        if not math.isfinite(train_loss) or train_loss > DIVERGED * GUESS[params.loss]:
            way_out = f"lower train.lr (now {params.lr})" + (
                f" or raise train.mu (now {params.mu})" if params.optimizer == "sdlm" else ""
            )
            absurd = (
                f", more than {DIVERGED} times a guess's ({GUESS[params.loss]:.3g})"
                if math.isfinite(train_loss)
                else ""
            )
            raise TrainingDiverged(
                f"training diverged at epoch {epoch}: the loss is {train_loss:.4g}{absurd}; {way_out}"
            )
        yield epoch, lr, train_loss, train_acc, more


def fit(params: TrainParams, train: Split, val: Split, eval_batch_size: int = 1000, log: Log = print) -> TrainResult:
    """Train for ``params.epochs``; keep the weights with the best validation accuracy, or without validation
    digits (``split.val_size: 0``) the last epoch's.

    ``params`` is the validated ``train`` section of params.yaml.  The test set
    never enters here: model selection uses the validation split only.
    """
    model = build_model(params.variant, params.seed, params.init)
    engine = engine_for(params, model, train)
    if params.optimizer == "sdlm" and params.batch_size > 1:
        log(
            f"train: note: SDLM is defined per pattern (batch 1); at batch {params.batch_size} each step scales the "
            "batch's mean gradient by lr / (mu + h_kk) (docs/paper-training.md)"
        )
    validating = len(val.labels) > 0
    if not validating:
        log("train: no validation digits (split.val_size: 0): the model kept is the last epoch's")
    best_state, best_epoch, best_accuracy = None, 0, -1.0
    history = []
    started = epoch_started = time.perf_counter()
    for epoch, lr, train_loss, train_acc, more in sgd_epochs(params, train, engine):
        row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_accuracy": train_acc}
        if validating:
            outputs, val_loss = engine.evaluate(val.inputs, val.labels, eval_batch_size)
            row.update(val_loss=val_loss, val_accuracy=(outputs.argmax(1) == val.labels).float().mean().item())
        history.append({**row, **more})
        improved = row["val_accuracy"] > best_accuracy if validating else epoch == params.epochs
        if improved:
            best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
            best_accuracy = row.get("val_accuracy", best_accuracy)
        checked = f"  val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.2%}" if validating else ""
        log(
            f"epoch {epoch:>3}/{params.epochs}  lr {lr:.5f}  train loss {train_loss:.4f} acc {train_acc:.2%}{checked}  "
            f"{time.perf_counter() - epoch_started:.1f}s{'  *best' if improved and validating else ''}"
            + (f"  rates {more['rate_min']:.2g}-{more['rate_max']:.2g}" if more else "")
        )
        epoch_started = time.perf_counter()
    model.load_state_dict(best_state)
    return TrainResult(model, engine, best_epoch, history, time.perf_counter() - started)
