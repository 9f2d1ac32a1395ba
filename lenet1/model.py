"""LeNet-1 (LeCun et al., "Handwritten digit recognition with a back-propagation
network", NIPS 2, 1989/1990), in two variants.

Both share the published layer sizes: a 28x28 input; H1, 4 maps 24x24 (5x5
convolutions); H2, 4 maps 12x12 (2x2 subsampling); H3, 12 maps 8x8 (5x5
convolutions); H4, 12 maps 4x4 (2x2 subsampling); 10 fully connected outputs.

``paper``, the published network (p. 402: "2,578 independent parameters"):
    H1   4 x (25 weights + 1 bias)                  =   104
    H2   4 x (1 coefficient + 1 bias)                =     8
    H3  20 H2->H3 map connections x 25 + 12 biases   =   512
    H4  12 x (1 coefficient + 1 bias)                =    24
    out 10 x (192 + 1)                               = 1,930
                                                       2,578
  H3's connections are the paper's Table 1 (p. 400), ``H3_INPUTS``: two
  independent modules, H3 maps 1-6 reading H2 maps 1-2 and maps 7-12 reading
  H2 maps 3-4.  Subsampling units average 2x2 inputs, multiply by a trainable
  coefficient, add a trainable bias and squash, like every other layer; the
  squashing function is the scaled tanh 1.7159 * tanh(2/3 * a) (LeCun et al.
  1998, "Efficient BackProp": A and S chosen so that f(+-1) = +-1).

``full`` (3,246 parameters), a common modern reading: H3 sees all four H2
maps, plain average pooling without parameters, tanh:
    H1 104 + H3 12 x (4 x 25 + 1) = 1,212 + out 1,930 = 3,246.

No ReLU, batch norm or dropout: this is LeNet-1.  Both return the ten
output pre-activations; ``squash`` is the output nonlinearity the MSE loss
applies, since argmax is unchanged by a monotonic function.  The arithmetic
comes from ``lenet1.numerics``: exact (the same bits on every CPU) or stock torch;
``lenet1.train`` sends a deterministic 'full' model's training (cross-entropy) and
predictions to ``lenet1.fused`` instead.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from lenet1.numerics import Ops
from lenet1.outputs import save_torch
from lenet1.errors import InputError, MissingInput

# Table 1 (p. 400), maps numbered from 0: H3 map o <- the H2 maps in H3_INPUTS[o].
H3_INPUTS: tuple[tuple[int, ...], ...] = (
    (0,), (0, 1), (0, 1), (1,), (0, 1), (0, 1),
    (2,), (2, 3), (2, 3), (3,), (2, 3), (2, 3),
)
PAPER_PARAMETERS = 2578
FULL_PARAMETERS = 3246
KERNEL = 5
VARIANTS = ("full", "paper")  # the allowed train.variant values: all-to-all H2->H3, or Table 1


class Convolution(nn.Module):
    """5x5 convolutions where output map o sees the input maps in ``table[o]``.

    A partial table keeps only the connected kernels as parameters (so ``numel``
    counts the independent weights) and scatters them into a dense kernel per call.
    """

    def __init__(self, in_maps: int, table: tuple[tuple[int, ...], ...], ops: Ops) -> None:
        super().__init__()
        self.ops, self.in_maps, self.out_maps, self.table = ops, in_maps, len(table), table
        pairs = [(out, inp) for out, ins in enumerate(table) for inp in ins]
        self.dense = len(pairs) == self.out_maps * in_maps
        shape = (self.out_maps, in_maps, KERNEL, KERNEL) if self.dense else (len(pairs), KERNEL, KERNEL)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(self.out_maps))
        self.register_buffer("slots", torch.tensor([out * in_maps + inp for out, inp in pairs]), persistent=False)
        # Each weight's and bias's init bound, 1/sqrt(fan-in of its output map).
        bound = [1 / math.sqrt(len(ins) * KERNEL * KERNEL) for ins in table]
        self.bias_bound = torch.tensor(bound)
        self.weight_bound = torch.tensor([bound[out] for out, _ in pairs]).view(*self.weight.shape[:-2], 1, 1)

    def kernel(self) -> torch.Tensor:
        if self.dense:
            return self.weight
        kernel = self.weight.new_zeros(self.out_maps * self.in_maps, KERNEL, KERNEL).index_copy(0, self.slots, self.weight)
        return kernel.view(self.out_maps, self.in_maps, KERNEL, KERNEL)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops.conv2d(x, self.kernel(), self.bias)


class Subsampling(nn.Module):
    """2x2 average; ``trainable``: times a coefficient per map, plus a bias per map (the paper's units)."""

    def __init__(self, maps: int, trainable: bool, ops: Ops) -> None:
        super().__init__()
        self.ops, self.maps = ops, maps
        if trainable:
            self.coefficient = nn.Parameter(torch.ones(maps))
            self.bias = nn.Parameter(torch.zeros(maps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.ops.avg_pool2(x)
        if not hasattr(self, "coefficient"):
            return pooled
        per_map = (1, -1, 1, 1)
        scaled = pooled * self.ops.broadcast(self.coefficient.view(per_map), pooled.shape)
        return scaled + self.ops.broadcast(self.bias.view(per_map), pooled.shape)


class Linear(nn.Module):
    def __init__(self, inputs: int, outputs: int, ops: Ops) -> None:
        super().__init__()
        self.ops, self.weight = ops, nn.Parameter(torch.empty(outputs, inputs))
        self.bias = nn.Parameter(torch.empty(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops.linear(x, self.weight, self.bias)


class LeNet1(nn.Module):
    def __init__(self, variant: str = "full", exact: bool = True) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown LeNet-1 variant {variant!r}: expected one of {', '.join(VARIANTS)}")
        self.variant, self.ops = variant, Ops(exact)
        paper = variant == "paper"
        self.h1 = Convolution(1, ((0,),) * 4, self.ops)
        self.h2 = Subsampling(4, paper, self.ops)
        self.h3 = Convolution(4, H3_INPUTS if paper else ((0, 1, 2, 3),) * 12, self.ops)
        self.h4 = Subsampling(12, paper, self.ops)
        self.out = Linear(12 * 4 * 4, 10, self.ops)

    def squash(self, x: torch.Tensor) -> torch.Tensor:
        if self.variant == "paper":
            return self.ops.tanh(x * (2.0 / 3.0)) * 1.7159
        return self.ops.tanh(x)

    def states(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's unit states, after squashing as the paper draws them, and the outputs."""
        paper = self.variant == "paper"
        h1 = self.squash(self.h1(x))
        h2 = self.squash(self.h2(h1)) if paper else self.h2(h1)
        h3 = self.squash(self.h3(h2))
        h4 = self.squash(self.h4(h3)) if paper else self.h4(h3)
        return {"H1": h1, "H2": h2, "H3": h3, "H4": h4, "output": self.out(h4.flatten(1))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.states(x)["output"]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(variant: str, seed: int, exact: bool = True) -> LeNet1:
    """A LeNet-1 whose initial weights depend only on ``seed``: uniform(+-1/sqrt(fan-in)), biases too.

    Drawing from an explicit generator keeps the init independent of any other
    use of the global RNG; subsampling coefficients start at 1 and biases at 0.
    """
    generator = torch.Generator().manual_seed(seed)
    model = LeNet1(variant, exact)
    with torch.no_grad():
        for layer in (model.h1, model.h3):
            layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * layer.weight_bound)
            layer.bias.copy_((torch.rand(layer.bias.shape, generator=generator) * 2 - 1) * layer.bias_bound)
        bound = 1 / math.sqrt(model.out.weight.shape[1])
        model.out.weight.copy_((torch.rand(model.out.weight.shape, generator=generator) * 2 - 1) * bound)
        model.out.bias.copy_((torch.rand(model.out.bias.shape, generator=generator) * 2 - 1) * bound)
    return model


# Version 2: exact numerics and the paper's Table 1; version 1 (unversioned) had an invented H3 table.
MODEL_FORMAT = 2
RETRAIN = "retrain it with `dvc repro -f -s train`"


def save_model(path: str | Path, model: LeNet1, params: dict, best_epoch: int) -> None:
    """The weights, the train params that made them and the file format, byte-stably."""
    save_torch(path, {"format": MODEL_FORMAT, "state_dict": model.state_dict(), "params": params, "best_epoch": best_epoch})


def load_model(path: str | Path, exact: bool = True) -> tuple[LeNet1, dict]:
    """The model saved by the train stage, and the train params that made it."""
    path = Path(path)
    try:
        saved = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise MissingInput(f"{path}: not found; run `dvc repro train` first") from None
    except Exception as err:
        raise InputError(f"{path}: not a readable model file ({err}); {RETRAIN}") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("params"), dict) or "state_dict" not in saved:
        raise InputError(f"{path}: not a model file written by the train stage; {RETRAIN}")
    if saved.get("format") != MODEL_FORMAT:
        raise InputError(f"{path}: model format {saved.get('format', 1)}, this code reads format {MODEL_FORMAT} "
                         f"(exact numerics, the paper's Table 1 for H3); {RETRAIN}")
    variant = saved["params"].get("variant")
    if variant not in VARIANTS:
        raise InputError(f"{path}: unknown variant {variant!r}; {RETRAIN}")
    model = LeNet1(variant, exact)
    try:
        model.load_state_dict(saved["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as err:
        raise InputError(f"{path}: weights do not fit LeNet-1 '{variant}' ({str(err).splitlines()[0]}); {RETRAIN}") from None
    model.eval()
    return model, saved["params"]
