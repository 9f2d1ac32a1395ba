"""LeNet-1 (LeCun et al., "Handwritten digit recognition with a back-propagation
network", NIPS 2, 1989/1990): the one definition of the network.

Every tool imports this module: training in stock PyTorch is this module's
autograd; the exact engine (``lenet1.engine``) builds the same network from
the same ``Architecture`` and is tested, at every train start, against this
module's float64 autograd (``lenet1.engine.probe``).  Edit the architecture
data (``lenet1/architecture.py``: H3 table, subsampling, squash) and deterministic
mode trains the edit; edit the code and it refuses until ``train.deterministic: false``.

Both variants share the published layer sizes: a 28x28 input; H1, 4 maps 24x24
(5x5 convolutions); H2, 4 maps 12x12 (2x2 subsampling); H3, 12 maps 8x8 (5x5
convolutions on the H2 maps its table names); H4, 12 maps 4x4 (2x2
subsampling); 10 fully connected outputs.

``paper``, the published network (p. 402: "2,578 independent parameters"):
    H1   4 x (25 weights + 1 bias)                  =   104
    H2   4 x (1 coefficient + 1 bias)                =     8
    H3  20 H2->H3 map connections x 25 + 12 biases   =   512
    H4  12 x (1 coefficient + 1 bias)                =    24
    out 10 x (192 + 1)                               = 1,930
                                                       2,578
  H3's connections are the paper's Table 1 (p. 400), ``architecture.H3_TABLE``: H3 maps 1-6
  read H2 maps 1-2 and maps 7-12 read H2 maps 3-4.  Subsampling units average
  2x2 inputs, multiply by a trainable coefficient, add a trainable bias and
  squash, like every other layer; the squash is the scaled tanh
  1.7159 * tanh(2/3 * a) (LeCun et al. 1998, "Efficient BackProp").

``full`` (3,246 parameters), a common modern reading: H3 sees all four H2
maps, plain average pooling without parameters, tanh:
    H1 104 + H3 12 x (4 x 25 + 1) = 1,212 + out 1,930 = 3,246.

No ReLU, batch norm or dropout.  The model returns the ten output
pre-activations; ``squash`` is the output nonlinearity the MSE loss applies.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from lenet1.architecture import ARCHITECTURES, VARIANTS, Architecture

KERNEL = 5
PAPER_PARAMETERS = 2578
FULL_PARAMETERS = 3246


class Convolution(nn.Module):
    """5x5 convolutions where output map o sees the input maps in ``table[o]``.

    A partial table keeps only the connected kernels as parameters (so ``numel``
    counts the independent weights) and scatters them into a dense kernel per call.
    """

    def __init__(self, in_maps: int, table: tuple[tuple[int, ...], ...]) -> None:
        super().__init__()
        self.in_maps, self.out_maps, self.table = in_maps, len(table), table
        pairs = [(out, inp) for out, ins in enumerate(table) for inp in ins]
        self.dense = len(pairs) == self.out_maps * in_maps
        shape = (self.out_maps, in_maps, KERNEL, KERNEL) if self.dense else (len(pairs), KERNEL, KERNEL)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(self.out_maps))
        self.register_buffer("slots", torch.tensor([out * in_maps + inp for out, inp in pairs]), persistent=False)
        self.fan_in = [len(ins) * KERNEL * KERNEL for ins in table]  # of each output map's units
        self.kernel_map = [out for out, _ in pairs]  # the output map of each kernel

    def kernel(self) -> torch.Tensor:
        if self.dense:
            return self.weight
        kernel = self.weight.new_zeros(self.out_maps * self.in_maps, KERNEL, KERNEL).index_copy(
            0, self.slots, self.weight
        )
        return kernel.view(self.out_maps, self.in_maps, KERNEL, KERNEL)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel(), self.bias)


class Subsampling(nn.Module):
    """2x2 average; ``trainable``: times a coefficient per map, plus a bias per map (then squashed by LeNet1)."""

    def __init__(self, maps: int, trainable: bool) -> None:
        super().__init__()
        self.maps, self.trainable = maps, trainable
        if trainable:
            self.coefficient = nn.Parameter(torch.ones(maps))
            self.bias = nn.Parameter(torch.zeros(maps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(x, 2)
        if not self.trainable:
            return pooled
        return pooled * self.coefficient.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class LeNet1(nn.Module):
    def __init__(self, variant: str = "full", architecture: Architecture | None = None) -> None:
        super().__init__()
        if variant not in ARCHITECTURES:
            raise ValueError(f"unknown LeNet-1 variant {variant!r}: expected one of {', '.join(VARIANTS)}")
        self.variant, self.architecture = variant, architecture or ARCHITECTURES[variant]
        trainable = self.architecture.trainable_subsampling
        self.h1 = Convolution(1, ((0,),) * 4)
        self.h2 = Subsampling(4, trainable)
        self.h3 = Convolution(4, self.architecture.h3_table)
        self.h4 = Subsampling(12, trainable)
        self.out = nn.Linear(12 * 4 * 4, 10)

    def squash(self, x: torch.Tensor) -> torch.Tensor:
        return self.architecture.amplitude * torch.tanh(self.architecture.slope * x)

    def activations(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's weighted sums (A1 ... A4, before squashing) and unit states (H1 ... H4), and the outputs."""
        trainable = self.architecture.trainable_subsampling
        a1 = self.h1(x)
        h1 = self.squash(a1)
        a2 = self.h2(h1)
        h2 = self.squash(a2) if trainable else a2
        a3 = self.h3(h2)
        h3 = self.squash(a3)
        a4 = self.h4(h3)
        h4 = self.squash(a4) if trainable else a4
        hidden = {"A1": a1, "H1": h1, "A2": a2, "H2": h2, "A3": a3, "H3": h3, "A4": a4, "H4": h4}
        return {**hidden, "output": self.out(h4.flatten(1))}

    def states(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's unit states, after squashing as the paper draws them, and the outputs."""
        return {name: value for name, value in self.activations(x).items() if not name.startswith("A")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.states(x)["output"]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def init_bound(init: str, fan_in: int) -> float:
    """The half-width of a unit's uniform initial weights: ``inverse_sqrt``, 1/sqrt(fan-in) (as torch's
    layers), or ``lecun98``, 2.4/fan-in (LeCun, Bottou, Bengio, Haffner 1998, Appendix A)."""
    if init == "inverse_sqrt":
        return 1 / math.sqrt(fan_in)
    if init == "lecun98":
        return 2.4 / fan_in
    raise ValueError(f"unknown init {init!r}: expected inverse_sqrt or lecun98")


def build_model(variant: str, seed: int, init: str = "inverse_sqrt") -> LeNet1:
    """A LeNet-1 whose initial weights depend only on ``seed``: uniform(+-init_bound) for weights and biases.

    Drawing from an explicit generator keeps the init independent of any other
    use of the global RNG; subsampling coefficients start at 1 and biases at 0.
    """
    generator = torch.Generator().manual_seed(seed)
    model = LeNet1(variant)
    with torch.no_grad():
        for layer in (model.h1, model.h3):
            bound = [init_bound(init, fan_in) for fan_in in layer.fan_in]
            weight_bound = torch.tensor([bound[out] for out in layer.kernel_map]).view(*layer.weight.shape[:-2], 1, 1)
            layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * weight_bound)
            layer.bias.copy_((torch.rand(layer.bias.shape, generator=generator) * 2 - 1) * torch.tensor(bound))
        bound = init_bound(init, model.out.weight.shape[1])
        model.out.weight.copy_((torch.rand(model.out.weight.shape, generator=generator) * 2 - 1) * bound)
        model.out.bias.copy_((torch.rand(model.out.bias.shape, generator=generator) * 2 - 1) * bound)
    return model
