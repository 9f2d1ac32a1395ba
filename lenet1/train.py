"""Train LeNet-1 with plain SGD on in-memory tensors.

Batches are index_select calls on tensors that hold the whole split (MNIST
is 47 MB), not a per-sample Dataset/DataLoader: at LeNet-1's size the
per-sample Python work would cost more than the network.
"""
from __future__ import annotations

import copy
import functools
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from lenet1 import fused
from lenet1.data import MNIST_TRAIN_SIZE
from lenet1.errors import InputError
from lenet1.model import VARIANTS, LeNet1, build_model
from lenet1.params import choice, flag, integer, number, param, seed_rule

SCHEDULES = ("constant", "step", "cosine")  # the allowed train.schedule values, implemented by learning_rates
LOSSES = ("cross_entropy", "mse")  # the allowed train.loss values, implemented by make_loss
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Log = Callable[[str], None]


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
    loss: str = param(choice(LOSSES))
    seed: int = param(seed_rule("the initial weights and the batch order"))
    deterministic: bool = param(flag())
    train_subset: int = param(integer(0, MNIST_TRAIN_SIZE, "0 = the whole training split"))


class TrainingDiverged(InputError):
    """The loss became infinite or NaN: the learning rate is too high for this run."""


@dataclass
class Split:
    inputs: torch.Tensor  # float32 (N, 1, 28, 28)
    labels: torch.Tensor  # int64 (N,)


def make_loss(name: str, model: LeNet1) -> Loss:
    """Cross-entropy on the outputs, or the paper's MSE between squashed outputs and +-1 targets."""
    if name == "cross_entropy":
        return model.ops.cross_entropy
    if name == "mse":
        def mse(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            targets = F.one_hot(labels, outputs.shape[1]).to(outputs.dtype) * 2 - 1
            error = model.squash(outputs) - targets
            return model.ops.mean(error * error)
        return mse
    raise ValueError(f"unknown loss {name!r}: expected one of {', '.join(LOSSES)}")


class SGD:
    """Plain SGD, p <- p - lr * (g + weight_decay * p), one rounding per operation.

    torch.optim.SGD's ``add_(g, alpha=-lr)`` is a fused multiply-add on some CPUs and a multiply then
    an add on others; here every CPU rounds alike.  Not a torch.optim.Optimizer: its constructor
    imports ``torch._dynamo``, about 1.4 s per train stage.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float, weight_decay: float = 0.0) -> None:
        self.params, self.lr, self.weight_decay = list(params), lr, weight_decay

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for param in self.params:
            if param.grad is None:
                continue
            grad = param.grad
            if self.weight_decay:
                grad = grad + param * self.weight_decay
            param.sub_(grad * self.lr)


def learning_rates(schedule: str, lr: float, epochs: int, step_size: int, gamma: float) -> list[float]:
    """Each epoch's learning rate: constant, step (x gamma every step_size epochs) or cosine to 0.

    The same floats as torch's ConstantLR, StepLR and CosineAnnealingLR (recursive form), without torch.optim.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    rates = [lr]
    for epoch in range(1, epochs):
        if schedule == "cosine":
            factor = (1 + math.cos(math.pi * epoch / epochs)) / (1 + math.cos(math.pi * (epoch - 1) / epochs))
        else:
            factor = gamma if schedule == "step" and epoch % step_size == 0 else 1.0
        rates.append(rates[-1] * factor)
    return rates


def train_epoch(model: nn.Module, data: Split, batch_size: int, optimizer: SGD, loss_fn: Loss, order: torch.Tensor) -> tuple[float, float]:
    """One pass over the digits of ``data`` listed in ``order``; mean loss and accuracy seen while training."""
    model.train()
    if isinstance(optimizer, SGD) and fused.trains(model, loss_fn):
        return fused.train_epoch(model, data.inputs, data.labels, order, batch_size, optimizer.lr, optimizer.weight_decay)
    total_loss = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        labels = data.labels.index_select(0, batch)
        loss, outputs = train_step(model, data.inputs.index_select(0, batch), labels, optimizer, loss_fn)
        # Summed as tensors: a .item() per step would cost more than it tells.
        total_loss += loss * len(batch)
        correct += (outputs.argmax(1) == labels).sum()
    return total_loss.item() / len(order), correct.item() / len(order)


def train_step(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, optimizer: SGD, loss_fn: Loss) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on a batch; returns the (detached) loss and outputs."""
    if isinstance(optimizer, SGD) and fused.trains(model, loss_fn):
        return fused.train_step(model, inputs, labels, optimizer.lr, optimizer.weight_decay)
    outputs = model(inputs)
    loss = loss_fn(outputs, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach(), outputs.detach()


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Model outputs for ``inputs``, computed in batches."""
    model.eval()
    forward = functools.partial(fused.forward, model) if fused.computes(model) else model
    return torch.cat([forward(inputs[start : start + batch_size]) for start in range(0, len(inputs), batch_size)])


def score(outputs: torch.Tensor, labels: torch.Tensor, loss_fn: Loss) -> tuple[float, float]:
    """Mean loss and accuracy of ``outputs`` against ``labels``."""
    return loss_fn(outputs, labels).item(), (outputs.argmax(1) == labels).float().mean().item()


@dataclass
class TrainResult:
    model: LeNet1  # the weights of the best validation epoch
    best_epoch: int
    history: list[dict[str, Any]]  # one row per epoch
    seconds: float


def sgd_epochs(params: TrainParams, train: Split, model: LeNet1, loss_fn: Loss) -> Iterator[tuple[int, float, float, float]]:
    """Train ``model`` for ``params.epochs``; after each epoch yield (epoch, its lr, train loss, train accuracy).

    The batch order of every epoch comes from one generator seeded with ``params.seed``.
    """
    optimizer = SGD(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    rates = learning_rates(params.schedule, params.lr, params.epochs, params.step_size, params.gamma)
    order_generator = torch.Generator().manual_seed(params.seed)
    for epoch, lr in enumerate(rates, 1):
        optimizer.lr = lr
        order = torch.randperm(len(train.labels), generator=order_generator)
        train_loss, train_acc = train_epoch(model, train, params.batch_size, optimizer, loss_fn, order)
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training diverged at epoch {epoch}: the loss is {train_loss}; lower train.lr (now {params.lr})")
        yield epoch, lr, train_loss, train_acc


def fit(params: TrainParams, train: Split, val: Split, eval_batch_size: int = 1000, log: Log = print) -> TrainResult:
    """Train for ``params.epochs``; keep the weights with the best validation accuracy.

    ``params`` is the validated ``train`` section of params.yaml.  The test set
    never enters here: model selection uses the validation split only.
    """
    model = build_model(params.variant, params.seed, exact=params.deterministic)
    loss_fn = make_loss(params.loss, model)
    best_state, best_epoch, best_accuracy = None, 0, -1.0
    history = []
    started = epoch_started = time.perf_counter()
    for epoch, lr, train_loss, train_acc in sgd_epochs(params, train, model, loss_fn):
        val_loss, val_acc = score(predict(model, val.inputs, eval_batch_size), val.labels, loss_fn)
        seconds = time.perf_counter() - epoch_started
        history.append({"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_accuracy": train_acc, "val_loss": val_loss, "val_accuracy": val_acc})
        improved = val_acc > best_accuracy
        if improved:
            best_state, best_epoch, best_accuracy = copy.deepcopy(model.state_dict()), epoch, val_acc
        log(
            f"epoch {epoch:>3}/{params.epochs}  lr {lr:.5f}  train loss {train_loss:.4f} acc {train_acc:.2%}  "
            f"val loss {val_loss:.4f} acc {val_acc:.2%}  {seconds:.1f}s{'  *best' if improved else ''}"
        )
        epoch_started = time.perf_counter()
    model.load_state_dict(best_state)
    return TrainResult(model, best_epoch, history, time.perf_counter() - started)
