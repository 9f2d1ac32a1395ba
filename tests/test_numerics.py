"""The exact operations compute what stock float64 autograd computes, to float32 accuracy: values and gradients."""
import pytest
import torch
from torch.nn import functional as F

from lenet1 import numerics


def gradients_against_float64(op, reference, *tensors):
    generator = torch.Generator().manual_seed(0)
    inputs = [tensor.clone().requires_grad_() for tensor in tensors]
    out = op(*inputs)
    upstream = torch.randn(out.shape, generator=generator)
    grads = torch.autograd.grad(out, inputs, upstream)
    reference_inputs = [tensor.double().requires_grad_() for tensor in tensors]
    expected = reference(*reference_inputs)
    expected_grads = torch.autograd.grad(expected, reference_inputs, upstream.double())
    assert out.shape == expected.shape and torch.allclose(out.double(), expected, rtol=1e-5, atol=1e-5)
    for name, got, want in zip(("input", "weight", "bias"), grads, expected_grads):
        assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-4), name


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("in_maps, out_maps, side", [(1, 4, 28), (4, 12, 12), (3, 5, 9)])
def test_exact_convolution_and_its_gradients(batch, in_maps, out_maps, side):
    generator = torch.Generator().manual_seed(batch * side)
    x = torch.randn(batch, in_maps, side, side, generator=generator)
    weight = torch.randn(out_maps, in_maps, 5, 5, generator=generator) * 0.2
    bias = torch.randn(out_maps, generator=generator)
    gradients_against_float64(numerics.conv2d, F.conv2d, x, weight, bias)


@pytest.mark.parametrize("batch", [1, 7])
def test_exact_linear_and_its_gradients(batch):
    generator = torch.Generator().manual_seed(batch)
    x = torch.randn(batch, 192, generator=generator)
    weight, bias = torch.randn(10, 192, generator=generator) * 0.1, torch.randn(10, generator=generator)
    gradients_against_float64(numerics.linear, F.linear, x, weight, bias)


def test_convolution_input_gradient_does_not_depend_on_summation_order():
    """The input gradient's sums are exact, so another order (a loop over kernel positions, maps reversed)
    on the same grids gives the same bits; a rounding inside the sum would show here."""
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(3, 4, 12, 12, generator=generator).requires_grad_()
    weight, bias = torch.randn(12, 4, 5, 5, generator=generator) * 0.2, torch.zeros(12)
    upstream = torch.randn(3, 12, 8, 8, generator=generator)
    upstream[0, :, 0, 0] = upstream.abs().max()  # the largest terms at once: the grid's bound is reached
    (got,) = torch.autograd.grad(numerics.conv2d(x, weight, bias), x, upstream)

    bits = min(numerics._bits_for(upstream.numel() // 12, numerics._bits_for(100)), numerics._bits_for(12 * 25))
    weight_grid = numerics._split(weight.reshape(12, -1), numerics.GRID_BITS, low=False)[0].view(12, 4, 5, 5)
    flipped_maps = weight_grid.flip(0)

    def input_gradient(slice_: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(3, 4, 12, 12, dtype=torch.float64)
        for row in reversed(range(5)):
            for column in range(5):
                terms = torch.einsum("bohw,oc->bchw", slice_.flip(1), flipped_maps[:, :, row, column])
                total[:, :, row:row + 8, column:column + 8] += terms
        return total

    high, low = numerics._split(upstream, bits)
    assert torch.equal(got, (input_gradient(high) + input_gradient(low)).float())
