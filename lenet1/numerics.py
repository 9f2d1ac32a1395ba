"""Float arithmetic that gives the same bits on every CPU: deterministic mode's numerics.

Stock PyTorch rounds differently per machine: MKL picks its GEMM code by CPU
vendor and thread count (arm64 uses another BLAS), ``tanh``/``exp`` come from
MKL VML on x86-64 and Sleef on arm64, vectorised reductions sum in 8 lanes
on AVX and 4 on NEON, and some kernels fuse a multiply and an add.  So
deterministic mode builds LeNet-1 from three kinds of operation only:

- elementwise ``+ - * /``, ``round``, comparisons and copies, one per kernel:
  IEEE 754 defines each result exactly, so no SIMD width, thread split or
  CPU can change it, and no kernel has a multiply-add to fuse;
- exact matrix products: both operands are cut into float64 pieces on a
  power-of-two grid (an Ozaki-style split) so short that every product and
  partial sum inside a float64 GEMM or convolution is exact.  Any BLAS or
  ATen kernel then returns the same result, whatever its order, blocking,
  threads or FMA use; the pieces are recombined in a fixed order.
  Convolutions, linear layers and the gradient sums of broadcasts go through
  it; bias gradients and the pieces' recombination are plain sums, exact
  because their terms stay on the same grids;
- ``exp``, ``log``, ``tanh``, the cross-entropy and means from ``lenet1.elementary``.

The default, LeNet-1 'full' with cross-entropy, does not train through these, and no 'full'
model predicts through them: ``lenet1.fused`` computes those in C, with the same promise kept
another way (one image per vector lane, a fixed order for every sum).  They serve the ``paper``
variant, training with MSE and the unit states drawn in ``plots/feature_maps.png``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from lenet1.elementary import cross_entropy, mean, pow2, tanh

GRID_BITS = 24  # float32's significand: the most bits a factor keeps
FLOAT64_INTEGER_BITS = 53  # integers up to 2**53 are exact in float64


def _bits_for(depth: int, other_bits: int = GRID_BITS) -> int:
    """Bits one factor may keep so that any sum of ``depth`` products with an ``other_bits`` factor is exact."""
    bits = min(FLOAT64_INTEGER_BITS - other_bits - max(depth - 1, 1).bit_length(), GRID_BITS)
    if bits < 8:
        raise ValueError(f"exact arithmetic: a sum of {depth} products is too long (at most 2**21)")
    return bits


def _split(x: Tensor, bits: int, dim: int | None = None, low: bool = True) -> tuple[Tensor, Tensor | None]:
    """float64 ``high`` + ``low`` ~= x, each with at most ``bits`` significant bits on a common grid.

    The grid is 2**(e - bits), 2**(e - 2 bits) for ``low``, where 2**e bounds |x|
    over the whole tensor (or each slice along ``dim``).  Adding and subtracting
    1.5 * 2**(e + 52 - bits) rounds to that grid: two exact IEEE operations.
    A bound below 2**-90 counts as 2**-90, so the grids stay normal numbers.
    """
    x = x.double()
    if dim is None:  # one grid: a Python scalar saves five tensor ops, with the same value
        shift = 1.5 * 2.0 ** (max(math.frexp(x.abs().amax().item())[1], -90) + 52 - bits)
    else:
        shift = pow2(torch.frexp(x.abs().amax(dim, keepdim=True))[1].clamp(min=-90) + (52 - bits)) * 1.5
    high = (x + shift) - shift
    if not low:
        return high, None
    shift = shift * 2.0**-bits
    return high, ((x - high) + shift) - shift


def _exact_mm(a: Tensor, b: Tensor) -> Tensor:
    """a @ b for float32 (M, K) @ (K, N) with no rounding that depends on the BLAS.

    a's rows keep 24 bits, b's columns twice b_bits: every product and partial sum of the float64 GEMM
    is then an exact multiple of one power of two below 2**53 of it, the same in any order, blocking or FMA use.
    """
    b_bits = _bits_for(a.shape[1])
    a_grid = _split(a, GRID_BITS, 1, low=False)[0]
    b_high, b_low = _split(b, b_bits, 0)
    return (a_grid @ torch.cat([b_high, b_low], 1)).view(a.shape[0], 2, -1).sum(1).float()


class _Matmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(a, b)
        return _exact_mm(a, b)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        a, b = ctx.saved_tensors
        grad_a = _exact_mm(grad, b.t()) if ctx.needs_input_grad[0] else None
        grad_b = _exact_mm(a.t(), grad) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


def sum_rows(x: Tensor) -> Tensor:
    """The sum of each row of a 2-D float32 tensor, shape (rows,), the same bits everywhere; differentiable."""
    return _Matmul.apply(x, x.new_ones(x.shape[1], 1)).view(-1)


class _Broadcast(torch.autograd.Function):
    """``expand``, whose gradient sums over the expanded dims exactly (autograd's own sum would not)."""

    @staticmethod
    def forward(ctx, x: Tensor, shape: tuple[int, ...]) -> Tensor:
        ctx.kept = [dim for dim, size in enumerate(x.shape) if size == shape[dim]]
        ctx.in_shape = x.shape
        return x.expand(shape)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        summed = [dim for dim in range(grad.dim()) if dim not in ctx.kept]
        rows = grad.permute(*ctx.kept, *summed).reshape(math.prod(grad.shape[d] for d in ctx.kept), -1)
        return sum_rows(rows).view(ctx.in_shape), None


def broadcast(x: Tensor, shape: torch.Size) -> Tensor:
    return _Broadcast.apply(x, tuple(shape))


class _Affine(torch.autograd.Function):
    """x @ weight.T + bias, or a valid convolution of x with a ``kernel`` x kernel weight, exactly.

    x is put on one grid for the whole tensor and the weight on another, so that
    every product and partial sum of one float64 GEMM or convolution is exact
    (ATen's float64 convolution is im2col and a GEMM, no Winograd or FFT; a test
    checks it).  The backward pass cuts the output gradient into two slices, sized so that each
    slice's weight gradient (a sum over every output unit) and input gradient (a sum over the maps
    and the kernel's positions) are exact too; the two slices' results are then added in float64
    and converted to float32, the same two roundings on every machine.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, kernel: int) -> Tensor:
        x_bits = _bits_for(weight.shape[1])
        x_grid = _split(x, x_bits, low=False)[0]
        weight_grid = _split(weight, GRID_BITS, low=False)[0]
        ctx.save_for_backward(x_grid, weight_grid)
        ctx.x_bits, ctx.kernel = x_bits, kernel
        if not kernel:
            return (x_grid @ weight_grid.t()).float() + bias
        out = F.conv2d(x_grid, weight_grid.view(weight.shape[0], x.shape[1], kernel, kernel))
        return out.float() + bias.view(1, -1, 1, 1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor, Tensor, None]:
        x_grid, weight_grid = ctx.saved_tensors
        maps, kernel = weight_grid.shape[0], ctx.kernel
        bits = min(_bits_for(grad.numel() // maps, ctx.x_bits), _bits_for(maps * max(kernel, 1) ** 2))
        high, low = _split(grad, bits)
        by_maps = torch.cat([high, low], 1)  # the slices as extra maps: (N, 2 maps) or (B, 2 maps, H, W)
        if kernel:
            weight_shape = (2 * maps, x_grid.shape[1], kernel, kernel)
            grad_weight = F.grad.conv2d_weight(x_grid, weight_shape, by_maps)
        else:
            grad_weight = by_maps.t() @ x_grid
        grad_weight = grad_weight.view(2, maps, -1).sum(0)
        grad_bias = by_maps.sum((0, *range(2, by_maps.dim()))).view(2, -1).sum(0)  # exact in any order too
        grad_x = None
        if ctx.needs_input_grad[0]:
            by_batch = torch.cat([high, low])  # the slices as extra batch entries: no sum mixes the two grids
            if kernel:  # a GEMM, then col2im adds the kernel's overlaps, exactly, in float64
                shape = (2 * x_grid.shape[0], *x_grid.shape[1:])
                grad_x64 = F.grad.conv2d_input(shape, weight_grid.view(maps, -1, kernel, kernel), by_batch)
            else:
                grad_x64 = by_batch @ weight_grid
            grad_x = grad_x64.view(2, *x_grid.shape).sum(0).float()
        return grad_x, grad_weight.float(), grad_bias.float(), None


def linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """x @ weight.T + bias for (N, K) inputs."""
    return _Affine.apply(x, weight, bias, 0)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """A valid 2-D convolution, stride 1, square kernel."""
    return _Affine.apply(x, weight.reshape(weight.shape[0], -1), bias, weight.shape[2])


def avg_pool2(x: Tensor) -> Tensor:
    """2x2 average pooling, stride 2: ATen adds each window's four inputs in one fixed scalar loop and
    divides by 4 (exact); its gradient, grad / 4 into disjoint windows, is exact too."""
    return F.avg_pool2d(x, 2)


class Ops:
    """The operations a model is built from: stock torch (fast) or the exact ones above."""

    def __init__(self, exact: bool) -> None:
        self.exact = exact
        self.conv2d = conv2d if exact else F.conv2d
        self.linear = linear if exact else F.linear
        self.tanh = tanh if exact else torch.tanh
        self.avg_pool2 = avg_pool2 if exact else (lambda x: F.avg_pool2d(x, 2))
        self.broadcast = broadcast if exact else (lambda x, shape: x.expand(shape))
        self.cross_entropy = cross_entropy if exact else F.cross_entropy
        self.mean = mean if exact else torch.mean
