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
