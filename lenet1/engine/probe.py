"""The equivalence probe: before the exact engine trains, predicts or draws a model, it shows that it
computes that model as ``lenet1/model.py`` defines it, or refuses.

On a handful of the run's own digits it compares the engine's outputs and loss, and the weights after
one SGD step from fresh weights (``fresh_weights`` says why), with float64 autograd of the torch module
and ``lenet1.loss``: they must agree within float32 rounding.  Any edit the engine does not implement (a new squash,
an extra scale, another layer) fails here, before anything is written.  It costs a few milliseconds.
"""

from __future__ import annotations

import copy

import torch

from lenet1.engine import exact
from lenet1.engine.layout import Layout
from lenet1.errors import InputError
from lenet1.loss import make_loss
from lenet1.model import LeNet1

DIGITS = 16
PROBE_LR = 1024.0  # a power of two: the weights' change is the gradient scaled exactly, far above their rounding
OUTPUT_TOLERANCE = 1e-4  # relative to the largest output: float32 rounding is about 1e-7 per operation
GRADIENT_TOLERANCE = 1e-3  # relative to each tensor's largest gradient
STEP_WEIGHTS = 0.2  # the step is checked from weights uniform in +-0.2 (subsampling coefficients 1 +- 0.2)
WAY_OUT = (
    "the exact engine builds LeNet-1 from lenet1/architecture.py's ARCHITECTURES (H3 table, subsampling, squash): "
    "describe the change there, or set train.deterministic: false to train the edit with stock PyTorch kernels"
)


class EngineMismatch(InputError):
    """The exact engine does not compute the model that lenet1/model.py defines."""


def _refuse(model: LeNet1, what: str) -> EngineMismatch:
    return EngineMismatch(f"deterministic mode refuses LeNet-1 '{model.variant}': {what}; {WAY_OUT}")


def reference_step(
    model: LeNet1, loss: str, inputs: torch.Tensor, labels: torch.Tensor, lr: float
) -> tuple[torch.Tensor, float, dict[str, torch.Tensor]]:
    """Float64 autograd of the definition: the outputs, the loss and the weights after one SGD step."""
    reference = copy.deepcopy(model).double()
    outputs = reference(inputs.double())
    value = make_loss(loss, reference)(outputs, labels)
    value.backward()
    with torch.no_grad():
        new = {name: p - lr * p.grad for name, p in reference.named_parameters()}
    return outputs.detach(), value.item(), new


def fresh_weights(model: LeNet1) -> LeNet1:
    """The same module (class, architecture) with seeded weights of a network that has not saturated: in a
    trained one whose units sit at +-amplitude, float32's slope, amplitude^2 - s^2, keeps too few digits for a
    gradient to agree with float64's to 1e-3 (a run that SDLM saturated differed by 1.5%)."""
    fresh = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in fresh.named_parameters():
            noise = (torch.rand(param.shape, generator=generator) * 2 - 1) * STEP_WEIGHTS
            param.copy_(noise + (1.0 if name.endswith("coefficient") else 0.0))
    return fresh


def check(model: LeNet1, loss: str, inputs: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise EngineMismatch unless the engine computes ``model`` with ``loss`` on these digits (the first 16)."""
    inputs, labels = inputs[:DIGITS], labels[:DIGITS]
    layout = Layout.of(model, loss)  # raises LayoutError for weights it does not read
    outputs, want_loss, _ = reference_step(model, loss, inputs, labels, PROBE_LR)
    scale = max(outputs.abs().max().item(), 1.0)
    got, losses, _ = exact.forward(layout, inputs, labels)
    output_error = (got.double() - outputs).abs().max().item()
    if not output_error <= OUTPUT_TOLERANCE * scale:
        raise _refuse(
            model,
            f"its outputs differ from float64 autograd of the torch module by {output_error:.3g} "
            f"on {len(inputs)} training digits (tolerance {OUTPUT_TOLERANCE * scale:.1g})",
        )
    got_loss = losses.mean().item()
    if not abs(got_loss - want_loss) <= 1e-5 * max(abs(want_loss), 1.0):
        raise _refuse(model, f"its {loss} loss is {got_loss:.7g}, float64 autograd's {want_loss:.7g}")
    model = fresh_weights(model)
    _, _, want = reference_step(model, loss, inputs, labels, PROBE_LR)
    stepped = copy.deepcopy(model)
    exact.train(Layout.of(stepped, loss), inputs, labels, None, len(inputs), PROBE_LR, 0.0)
    before = dict(model.named_parameters())
    for name, param in stepped.named_parameters():
        want_change = want[name] - before[name].double()
        error = ((param.detach().double() - before[name].detach().double()) - want_change).abs().max().item()
        if not error <= GRADIENT_TOLERANCE * max(want_change.abs().max().item(), 1e-6):
            raise _refuse(model, f"its gradient of {name} differs from float64 autograd's by {error:.3g}")
