"""LeNet-1 (LeCun et al., "Handwritten digit recognition with a back-propagation
network", NIPS 2, 1989/1990), in two variants.

Both share the published layer sizes: a 28x28 input; H1, 4 maps 24x24 (5x5
convolutions); H2, 4 maps 12x12 (2x2 subsampling); H3, 12 maps 8x8 (5x5
convolutions); H4, 12 maps 4x4 (2x2 subsampling); 10 fully connected outputs.

``paper`` (2,578 parameters, the figure the paper gives: "2,578 independent
parameters"):
    H1   4 x (25 weights + 1 bias)                  =   104
    H2   4 x (1 coefficient + 1 bias)                =     8
    H3  20 H2->H3 map connections x 25 + 12 biases   =   512
    H4  12 x (1 coefficient + 1 bias)                =    24
    out 10 x (192 + 1)                               = 1,930
                                                       2,578
  The paper says each H3 map takes one or two 5x5 neighbourhoods of H2 maps
  but does not publish which; 20 connections is what the 2,578 total leaves,
  i.e. 4 H3 maps with one input and 8 with two.  ``H3_INPUTS`` picks a
  balanced table: one map per H2 map, all six pairs, and the two pairs that
  make every H2 map feed exactly five H3 maps.  Subsampling units average 2x2
  inputs, multiply by a trainable coefficient, add a trainable bias and squash,
  like every other layer; the squashing function is the scaled tanh
  1.7159 * tanh(2/3 * a) (LeCun et al. 1998, "Efficient BackProp" and
  "Gradient-based learning", which chose A and S so that f(+-1) = +-1).

``full`` (3,246 parameters), a common modern reading: H3 sees all four H2
maps, plain average pooling without parameters, tanh:
    H1 104 + H3 12 x (4 x 25 + 1) = 1,212 + out 1,930 = 3,246.

No ReLU, batch norm or dropout: this is LeNet-1.  Both return the ten
output pre-activations; ``squash`` is the output nonlinearity the MSE loss
applies, since argmax is unchanged by a monotonic function.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

H3_INPUTS: tuple[tuple[int, ...], ...] = (
    (0,), (1,), (2,), (3,),
    (0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3),
    (0, 1), (2, 3),
)
PAPER_PARAMETERS = 2578
FULL_PARAMETERS = 3246


class ScaledTanh(nn.Module):
    """f(a) = 1.7159 tanh(2a/3), so that f(1) = 1 and f(-1) = -1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class Subsampling(nn.Module):
    """2x2 average, times a trainable coefficient per map, plus a bias per map."""

    def __init__(self, maps: int) -> None:
        super().__init__()
        self.coefficient = nn.Parameter(torch.ones(maps))
        self.bias = nn.Parameter(torch.zeros(maps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(x, 2)
        return pooled * self.coefficient.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PartialConv2d(nn.Module):
    """5x5 convolution where output map o sees only the input maps in ``inputs[o]``.

    Only the connected kernels are parameters, so ``numel`` counts exactly the
    independent weights; they are scattered into a dense kernel on each call.
    """

    def __init__(self, inputs: tuple[tuple[int, ...], ...], in_maps: int, kernel: int = 5) -> None:
        super().__init__()
        pairs = [(out, inp) for out, ins in enumerate(inputs) for inp in ins]
        self.out_maps, self.in_maps, self.kernel = len(inputs), in_maps, kernel
        self.register_buffer("slots", torch.tensor([out * in_maps + inp for out, inp in pairs]), persistent=False)
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel, kernel))
        self.bias = nn.Parameter(torch.empty(len(inputs)))
        # Fan-in of the output map each weight and bias belongs to, for the init.
        map_fan_in = [len(ins) * kernel * kernel for ins in inputs]
        self.weight_fan_in = torch.tensor([map_fan_in[out] for out, _ in pairs], dtype=torch.float32)
        self.bias_fan_in = torch.tensor(map_fan_in, dtype=torch.float32)

    def dense_kernel(self) -> torch.Tensor:
        kernel = self.weight.new_zeros(self.out_maps * self.in_maps, self.kernel, self.kernel)
        kernel = kernel.index_copy(0, self.slots, self.weight)
        return kernel.view(self.out_maps, self.in_maps, self.kernel, self.kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_kernel(), self.bias)


class LeNet1(nn.Module):
    def __init__(self, variant: str = "full") -> None:
        super().__init__()
        if variant not in ("paper", "full"):
            raise ValueError(f"unknown LeNet-1 variant {variant!r}: expected 'paper' or 'full'")
        self.variant = variant
        self.h1 = nn.Conv2d(1, 4, 5)
        if variant == "paper":
            self.squash: nn.Module = ScaledTanh()
            self.h2: nn.Module = Subsampling(4)
            self.h3: nn.Module = PartialConv2d(H3_INPUTS, in_maps=4)
            self.h4: nn.Module = Subsampling(12)
        else:
            self.squash = nn.Tanh()
            self.h2 = nn.AvgPool2d(2)
            self.h3 = nn.Conv2d(4, 12, 5)
            self.h4 = nn.AvgPool2d(2)
        self.out = nn.Linear(12 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squash(self.h1(x))
        x = self.h2(x)
        if self.variant == "paper":
            x = self.squash(x)
        x = self.squash(self.h3(x))
        x = self.h4(x)
        if self.variant == "paper":
            x = self.squash(x)
        return self.out(x.flatten(1))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(variant: str, seed: int) -> LeNet1:
    """A LeNet-1 whose initial weights depend only on ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    model = LeNet1(variant)
    init_uniform(model, generator)
    return model


def init_uniform(model: LeNet1, generator: torch.Generator) -> None:
    """PyTorch's default uniform(+-1/sqrt(fan_in)) init, drawn from our own generator.

    Drawing from an explicit generator keeps the init independent of any other
    use of the global RNG; subsampling coefficients start at 1 and biases at 0.
    """
    with torch.no_grad():
        for layer in (model.h1, model.h3, model.out):
            if isinstance(layer, PartialConv2d):
                weight_bound = layer.weight_fan_in.rsqrt().view(-1, 1, 1)
                bias_bound = layer.bias_fan_in.rsqrt()
            else:
                fan_in = layer.weight[0].numel()
                weight_bound = bias_bound = 1.0 / math.sqrt(fan_in)
            layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * weight_bound)
            layer.bias.copy_((torch.rand(layer.bias.shape, generator=generator) * 2 - 1) * bias_bound)


def load_model(path: str | Path) -> tuple[LeNet1, dict]:
    """The model saved by the train stage, and the train params that made it."""
    path = Path(path)
    try:
        saved = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not found; run `dvc repro train` first") from None
    except Exception as err:
        raise ValueError(f"{path}: not a readable model file ({err}); rerun `dvc repro --force train`") from None
    model = LeNet1(saved["params"]["variant"])
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return model, saved["params"]
