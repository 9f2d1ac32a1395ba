"""exp, log, tanh, the softmax cross-entropy and means from exactly rounded operations only.

MKL VML (x86-64) and Sleef (arm64) round ``tanh`` and ``exp`` differently in the
last bit; these are built from + - * / and table look-ups, each one kernel, so
every CPU gives the same bits.  Part of deterministic mode (``lenet1.numerics``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

LN2_HI = 6.93147180369123816490e-01  # ln 2 in 32 bits: k * LN2_HI is exact (fdlibm)
LN2_LO = 1.90821492927058770002e-10
EXP_TERMS = 10  # Taylor terms of exp on |r| <= ln(2)/2: relative error < 1e-11
LOG_TERMS = 9  # odd terms of atanh on |f| <= 0.172: error < 1e-14
TANH_STEPS, TANH_MAX = 256, 10  # tanh's table: steps of 1/256 up to 10, where float32 tanh is 1


def pow2(exponent: Tensor) -> Tensor:
    """2.0 ** exponent as float64, built from the bits (exact; exponent in -1022..1023)."""
    return ((exponent.long() + 1023) << 52).view(torch.float64)

def _horner(x: Tensor, coefficients: list[float]) -> Tensor:
    result = torch.full_like(x, coefficients[-1])
    for coefficient in reversed(coefficients[:-1]):
        result = result * x + coefficient  # two kernels: never a fused multiply-add
    return result


def exp64(x: Tensor) -> Tensor:
    """exp of a float64 tensor (relative error < 1e-11); inputs clamped to [-700, 700]."""
    x = x.clamp(-700.0, 700.0)
    k = torch.round(x * (1 / math.log(2)))
    r = (x - k * LN2_HI) - k * LN2_LO  # |r| <= ln(2)/2
    return _horner(r, [1 / math.factorial(n) for n in range(EXP_TERMS)]) * pow2(k)


def log64(x: Tensor) -> Tensor:
    """Natural log of a positive float64 tensor: log(m * 2**e) = e ln 2 + 2 atanh((m-1)/(m+1))."""
    mantissa, exponent = torch.frexp(x)  # mantissa in [0.5, 1)
    small = mantissa < math.sqrt(0.5)
    mantissa = torch.where(small, mantissa * 2.0, mantissa)  # now in [0.707, 1.414)
    exponent = (exponent - small.long()).double()
    f = (mantissa - 1.0) / (mantissa + 1.0)
    series = _horner(f * f, [2.0 / (2 * n + 1) for n in range(LOG_TERMS)]) * f
    return exponent * math.log(2) + series


def _tanh_table() -> Tensor:
    """tanh(j / TANH_STEPS) for j = 0 .. TANH_STEPS * TANH_MAX, from exp64, so the same everywhere."""
    e = exp64(torch.arange(TANH_STEPS * TANH_MAX + 1, dtype=torch.float64) * (-2.0 / TANH_STEPS))
    return ((1.0 - e) / (1.0 + e)).float()


def _tanh(x: Tensor) -> Tensor:
    """float32 tanh(a + d) = (tanh a + tanh d) / (1 + tanh a tanh d): a from the table, |d| < 1/256.

    tanh d = d - d**3/3 to float32 precision there; within 3 ulp of tanh overall.
    """
    magnitude = x.abs().clamp(max=float(TANH_MAX))
    steps = torch.nan_to_num(torch.floor(magnitude * TANH_STEPS))  # NaN stays NaN through d, not an index
    d = magnitude - steps * (1.0 / TANH_STEPS)
    tanh_d = (d * d * (-1 / 3) + 1.0) * d
    tanh_a = TANH_TABLE.index_select(0, steps.long().reshape(-1)).view(steps.shape)  # a quarter of indexing's time
    return torch.copysign((tanh_a + tanh_d) / (tanh_a * tanh_d + 1.0), x)


class _Tanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = _tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return grad * (1.0 - y * y)


def tanh(x: Tensor) -> Tensor:
    return _Tanh.apply(x)


class _CrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, labels: Tensor) -> Tensor:
        logits64 = logits.double()
        shifted = logits64 - logits64.amax(1, keepdim=True)
        exps = exp64(shifted)
        total = exps[:, 0]
        for column in range(1, exps.shape[1]):  # ten classes: a fixed left-to-right sum
            total = total + exps[:, column]
        ctx.save_for_backward((exps / total[:, None]).float(), labels)
        losses = log64(total) - shifted.gather(1, labels[:, None]).view(-1)
        return logits.new_tensor(math.fsum(losses.tolist()) / len(labels))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        probabilities, labels = ctx.saved_tensors
        targets = F.one_hot(labels, probabilities.shape[1]).float()
        return (probabilities - targets) * (grad / len(labels)), None


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean softmax cross-entropy, as ``F.cross_entropy``."""
    return _CrossEntropy.apply(logits, labels)


class _Mean(torch.autograd.Function):
    """The mean of all elements; ``math.fsum`` rounds the sum correctly, so once, everywhere."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.shape = x.shape
        return x.new_tensor(math.fsum(x.double().flatten().tolist()) / x.numel())

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return (grad / math.prod(ctx.shape)).expand(ctx.shape)


def mean(x: Tensor) -> Tensor:
    return _Mean.apply(x)


TANH_TABLE = _tanh_table()
