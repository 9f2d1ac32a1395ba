"""How a LeNet-1 is computed: the exact engine (deterministic mode: the same bits on every CPU) or stock
PyTorch.  Chosen once, when the model is built for training (``train.deterministic``); the model file
records which engine made it, and evaluation uses that one.

Both engines take the model of ``lenet1/model.py``; the exact one proves first that it computes that
model (``lenet1.engine.probe``) and refuses otherwise.  The package may import torch, the model, the
losses and lenet1.errors; never the data, the pipeline or the tools.
"""

from __future__ import annotations

import math

import torch

from lenet1.engine import exact, probe
from lenet1.engine.layout import VERSION, Layout, flat, unflat
from lenet1.engine.stock import StockEngine
from lenet1.model import LeNet1

ENGINES = ("exact", "stock")
Rates = dict[str, torch.Tensor] | None  # per-weight step factors by parameter name (SDLM), or none: plain SGD


def batch_mean(losses: list[float]) -> torch.Tensor:
    """A batch's mean loss as a float32 scalar; fsum is exact, so no CPU's vectorised sum can change it."""
    return torch.tensor(math.fsum(losses) / len(losses), dtype=torch.float32)


class ExactEngine:
    name = "exact"
    version = VERSION

    def __init__(self, model: LeNet1, loss: str, probe_inputs: torch.Tensor, probe_labels: torch.Tensor) -> None:
        probe.check(model, loss, probe_inputs, probe_labels)
        self.model, self.loss_name, self._checked = model, loss, (None, None)

    def _layout(self) -> Layout:
        """The layout, checked again whenever a weight tensor was replaced (another address, shape or type)."""
        key = tuple((t.data_ptr(), t.shape, t.dtype, t.is_contiguous()) for t in self.model.parameters())
        if key != self._checked[0]:
            self._checked = (key, Layout.of(self.model, self.loss_name))
        return self._checked[1]

    def _flat(self, rates: Rates) -> torch.Tensor | None:
        return None if rates is None else flat(rates).float()

    def train_step(
        self, inputs: torch.Tensor, labels: torch.Tensor, lr: float, weight_decay: float, rates: Rates = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on the batch (with ``rates``, each weight's step times its rate): its mean loss and its
        outputs before the step."""
        losses, logits = exact.train(
            self._layout(), inputs, labels, None, len(inputs), lr, weight_decay, self._flat(rates)
        )
        return batch_mean(losses.tolist()), logits

    def train_epoch(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        order: torch.Tensor,
        batch_size: int,
        lr: float,
        weight_decay: float,
        rates: Rates = None,
    ) -> tuple[float, float]:
        """SGD on ``inputs[order]`` in batches, in one C call: the mean loss and accuracy seen while training,
        each batch's mean loss rounded to float32 as ``train_step`` gives it."""
        losses, logits = exact.train(
            self._layout(), inputs, labels, order, batch_size, lr, weight_decay, self._flat(rates)
        )
        values, starts = losses.tolist(), range(0, len(order), batch_size)
        sizes = [min(batch_size, len(values) - start) for start in starts]
        means = torch.tensor(
            [math.fsum(values[start : start + size]) / size for start, size in zip(starts, sizes)], dtype=torch.float64
        )
        # batch_mean's float32 rounding, times each size in float32, added in batch order: one tensor op per
        # epoch, not a torch scalar per batch (50,000 of them an epoch at batch 1)
        total = 0.0
        for weighted in (means.float() * torch.tensor(sizes, dtype=torch.float32)).double().tolist():
            total += weighted
        correct = (logits.argmax(1) == labels.index_select(0, order)).sum()
        return total / len(order), correct.item() / len(order)

    def curvature(self, inputs: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each weight's SDLM curvature h_kk over ``inputs``, as ``lenet1.curvature.diagonal`` defines it."""
        return unflat(exact.curvature(self._layout(), inputs, labels), self.model)

    def evaluate(self, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, float]:
        """The outputs and the mean loss (summed exactly) over ``inputs``."""
        outputs, losses = [], []
        for start in range(0, len(inputs), batch_size):
            logits, batch_losses, _ = exact.forward(
                self._layout(), inputs[start : start + batch_size], labels[start : start + batch_size]
            )
            outputs.append(logits)
            losses.extend(batch_losses.tolist())
        return torch.cat(outputs), math.fsum(losses) / len(losses)

    def predict(self, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
        return torch.cat(
            [
                exact.forward(self._layout(), inputs[start : start + batch_size])[0]
                for start in range(0, len(inputs), batch_size)
            ]
        )

    def states(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, _, states = exact.forward(self._layout(), inputs, states=True)
        return {**states, "output": logits}


def make_engine(
    name: str, model: LeNet1, loss: str, probe_inputs: torch.Tensor, probe_labels: torch.Tensor
) -> ExactEngine | StockEngine:
    """The engine ``name`` for ``model`` and ``loss``; the exact one first probes itself on the given digits."""
    if name == "exact":
        return ExactEngine(model, loss, probe_inputs, probe_labels)
    if name == "stock":
        return StockEngine(model, loss)
    raise ValueError(f"unknown engine {name!r}: expected one of {', '.join(ENGINES)}")
