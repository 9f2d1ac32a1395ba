"""Stock PyTorch (``train.deterministic: false``): the torch module's own autograd and kernels.

Fast, and trains any edit of ``lenet1/model.py``, but promises nothing across machines: MKL, oneDNN and
ATen pick their kernels, and so their rounding, by CPU and thread count.
"""

from __future__ import annotations

import torch

from lenet1 import curvature
from lenet1.loss import make_loss
from lenet1.model import LeNet1


class SGD:
    """Plain SGD, p <- p - lr * (g + weight_decay * p); with per-weight rates (SDLM), lr * rate instead of lr.

    Not a torch.optim.Optimizer: its constructor imports ``torch._dynamo``, a long import for every train stage.
    """

    def __init__(
        self,
        params: list[tuple[str, torch.Tensor]],
        lr: float,
        weight_decay: float = 0.0,
        rates: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.params, self.lr, self.weight_decay, self.rates = params, lr, weight_decay, rates

    @torch.no_grad()
    def step(self) -> None:
        for name, param in self.params:
            if param.grad is None:
                continue
            grad = param.grad
            if self.weight_decay:
                grad = grad + param * self.weight_decay
            param.sub_(grad * (self.lr if self.rates is None else self.lr * self.rates[name].to(param.dtype)))
            param.grad = None


class StockEngine:
    name = "stock"
    version = 1

    def __init__(self, model: LeNet1, loss: str) -> None:
        self.model, self.loss_name, self.loss = model, loss, make_loss(loss, model)

    def train_step(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        lr: float,
        weight_decay: float,
        rates: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on the batch (with ``rates``, each weight's step times its rate): its mean loss and its
        outputs before the step."""
        self.model.train()
        outputs = self.model(inputs)
        loss = self.loss(outputs, labels)
        loss.backward()
        SGD(list(self.model.named_parameters()), lr, weight_decay, rates).step()
        return loss.detach(), outputs.detach()

    def curvature(self, inputs: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each weight's SDLM curvature h_kk over ``inputs`` (``lenet1.curvature.diagonal``)."""
        return curvature.diagonal(self.model, self.loss_name, inputs, labels)

    def train_epoch(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        order: torch.Tensor,
        batch_size: int,
        lr: float,
        weight_decay: float,
        rates: dict[str, torch.Tensor] | None = None,
    ) -> tuple[float, float]:
        total_loss = torch.zeros((), dtype=torch.float64)
        correct = torch.zeros((), dtype=torch.int64)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            batch_labels = labels.index_select(0, batch)
            loss, outputs = self.train_step(inputs.index_select(0, batch), batch_labels, lr, weight_decay, rates)
            total_loss += loss * len(batch)  # summed as tensors: a .item() per step would cost more than it tells
            correct += (outputs.argmax(1) == batch_labels).sum()
        return total_loss.item() / len(order), correct.item() / len(order)

    @torch.no_grad()
    def evaluate(self, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, float]:
        outputs = self.predict(inputs, batch_size)
        return outputs, self.loss(outputs, labels).item()

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
        self.model.eval()
        return torch.cat(
            [self.model(inputs[start : start + batch_size]) for start in range(0, len(inputs), batch_size)]
        )

    @torch.no_grad()
    def states(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        self.model.eval()
        return self.model.states(inputs)
