"""Stochastic diagonal Levenberg-Marquardt (LeCun, Bottou, Bengio, Haffner 1998, Appendix C), in torch: the
definition the exact engine's curvature pass (``csrc/network.h``) is tested against, and stock mode's own.

Each weight w_k gets its own step eta / (mu + h_kk), where h_kk is the Gauss-Newton approximation of
d2E/dw_k^2 of the per-pattern loss, averaged over a few hundred patterns before each pass.  It is
backpropagated like the gradient, with squares: d2E/da_k^2 = f'(a_k)^2 sum_i w_ik^2 d2E/da_i^2 (the
off-diagonal and f'' terms dropped), and a shared weight's h_kk sums d2E/da_i^2 x_j^2 over its connections.
A subsampling unit's inputs reach its average with weight 1/4 each, then its coefficient: (c/4)^2.
"""

from __future__ import annotations

import copy

import torch
from torch.nn import functional as F
from torch.nn.grad import conv2d_input, conv2d_weight

from lenet1.model import Convolution, LeNet1, Subsampling

PATTERNS = 500  # "we re-estimate the h_kk on 500 patterns before each training pass"
# The paper's E^p is the sum of squared errors over the 10 outputs; lenet1.loss's MSE is their mean, whose
# gradient is E^p's / 10; cross-entropy is per pattern already.  A step of eta / (mu + h) on E^p's gradient
# is a step of SCALE * eta / (mu + h) on ours.
SCALE = {"mse": 10.0, "cross_entropy": 1.0}


def _slope(model: LeNet1, weighted_sums: torch.Tensor) -> torch.Tensor:
    """squash'(a), by autograd of the model's own squash."""
    a = weighted_sums.detach().requires_grad_()
    (slope,) = torch.autograd.grad(model.squash(a).sum(), a)
    return slope


def _output_curvature(model: LeNet1, loss: str, z: torch.Tensor) -> torch.Tensor:
    """d2E^p/dz^2, Gauss-Newton: 2 squash'(z)^2 for the sum of squared errors, p (1 - p) for cross-entropy."""
    if loss == "mse":
        return 2 * _slope(model, z) ** 2
    p = F.softmax(z, dim=1)
    return p * (1 - p)


def _convolution(
    layer: Convolution, name: str, x: torch.Tensor, d2a: torch.Tensor, h: dict[str, torch.Tensor]
) -> torch.Tensor:
    """h of the layer's kernels and biases from d2E/da^2; returns d2E/dx^2 of its input x."""
    kernel = layer.kernel().detach()
    dense = conv2d_weight(x * x, kernel.shape, d2a)
    h[f"{name}.weight"] = dense if layer.dense else dense.flatten(0, 1)[layer.slots]
    h[f"{name}.bias"] = d2a.sum((0, 2, 3))
    return conv2d_input(x.shape, kernel * kernel, d2a)


def _subsampling(
    layer: Subsampling, name: str, x: torch.Tensor, d2a: torch.Tensor, h: dict[str, torch.Tensor]
) -> torch.Tensor:
    """As _convolution for 2x2 subsampling; d2a is d2E/da^2 of its units (their states, if not trainable)."""
    if layer.trainable:
        average = F.avg_pool2d(x, 2)
        h[f"{name}.coefficient"] = (d2a * average * average).sum((0, 2, 3))
        h[f"{name}.bias"] = d2a.sum((0, 2, 3))
        d2a = d2a * layer.coefficient.detach().view(1, -1, 1, 1) ** 2
    return d2a.repeat_interleave(2, 2).repeat_interleave(2, 3) * 0.0625


def diagonal(model: LeNet1, loss: str, inputs: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every weight's h_kk (float64, by parameter name), averaged over ``inputs``.  ``labels`` are not needed by
    the Gauss-Newton approximation, which drops the error's own second-order term; they are checked like
    the engine's."""
    if labels.numel() and not (0 <= int(labels.min()) and int(labels.max()) <= 9):
        raise ValueError("labels outside 0-9")
    model = copy.deepcopy(model).double()
    with torch.no_grad():
        act = model.activations(inputs.double())
    trainable = model.architecture.trainable_subsampling
    h: dict[str, torch.Tensor] = {}
    d2z = _output_curvature(model, loss, act["output"])
    h4 = act["H4"].flatten(1)
    h["out.weight"] = d2z.T @ (h4 * h4)
    h["out.bias"] = d2z.sum(0)
    d2 = (d2z @ model.out.weight.detach() ** 2).view_as(act["H4"])
    if trainable:
        d2 = d2 * _slope(model, act["A4"]) ** 2
    d2 = _subsampling(model.h4, "h4", act["H3"], d2, h) * _slope(model, act["A3"]) ** 2
    d2 = _convolution(model.h3, "h3", act["H2"], d2, h)
    if trainable:
        d2 = d2 * _slope(model, act["A2"]) ** 2
    d2 = _subsampling(model.h2, "h2", act["H1"], d2, h) * _slope(model, act["A1"]) ** 2
    _convolution(model.h1, "h1", inputs.double(), d2, h)
    return {name: value / len(inputs) for name, value in h.items()}


def step_rates(curvature: dict[str, torch.Tensor], mu: float, loss: str) -> dict[str, torch.Tensor]:
    """Each weight's rate, SCALE / (mu + h_kk) in float32: its step is lr times this times its gradient."""
    return {name: (SCALE[loss] / (mu + h)).float() for name, h in curvature.items()}
