"""A LeNet-1's architecture and weights as the C code reads them (``csrc/layout.h``), checked on this side:
the header, the squash, each weight slot's size and address, in the engine's slot order.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass

import torch

from lenet1.architecture import LOSSES
from lenet1.errors import InputError
from lenet1.model import LeNet1

MAGIC, VERSION = 0x4C4E3101, 4  # csrc/layout.h's ENGINE_MAGIC and ENGINE_VERSION
SLOTS = (
    "h1.weight",
    "h1.bias",
    "h2.coefficient",
    "h2.bias",
    "h3.weight",
    "h3.bias",
    "h4.coefficient",
    "h4.bias",
    "out.weight",
    "out.bias",
)  # csrc/layers.h's W1 ... BO
STATE_SHAPES = {"H1": (4, 24, 24), "H2": (4, 12, 12), "H3": (12, 8, 8), "H4": (12, 4, 4)}


class LayoutError(InputError):
    """The model is not a network the exact engine computes: its weights do not have the expected layout."""


def expected_shapes(model: LeNet1) -> dict[str, tuple[int, ...]]:
    """Every weight the engine reads, by state_dict name, with the shape its architecture implies."""
    arch = model.architecture
    pairs = sum(len(inputs) for inputs in arch.h3_table)
    h3 = (12, 4, 5, 5) if pairs == 48 else (pairs, 5, 5)
    shapes = {
        "h1.weight": (4, 1, 5, 5),
        "h1.bias": (4,),
        "h3.weight": h3,
        "h3.bias": (12,),
        "out.weight": (10, 192),
        "out.bias": (10,),
    }
    if arch.trainable_subsampling:
        shapes.update({"h2.coefficient": (4,), "h2.bias": (4,), "h4.coefficient": (12,), "h4.bias": (12,)})
    return shapes


@dataclass
class Layout:
    """What csrc/layout.h's describe() reads: the header, the squash and each slot's size; and the weights."""

    header: ctypes.Array
    squash: ctypes.Array
    sizes: ctypes.Array
    weights: list[torch.Tensor | None]

    @classmethod
    def of(cls, model: LeNet1, loss: str) -> Layout:
        arch, found = model.architecture, dict(model.named_parameters())
        expected = expected_shapes(model)
        if set(found) != set(expected):
            raise LayoutError(f"the exact engine reads the weights {sorted(expected)}, this model has {sorted(found)}")
        for name, shape in expected.items():
            tensor = found[name]
            if tuple(tensor.shape) != shape:
                raise LayoutError(
                    f"the exact engine expects {name} of shape {shape}, this model's is {tuple(tensor.shape)}"
                )
            if tensor.dtype != torch.float32 or tensor.device.type != "cpu" or not tensor.is_contiguous():
                raise LayoutError(
                    f"the exact engine needs float32, contiguous CPU weights; {name} is {tensor.dtype} "
                    f"on {tensor.device}"
                )
        pairs = [(out, inp) for out, inputs in enumerate(arch.h3_table) for inp in inputs]
        header = [
            MAGIC,
            VERSION,
            LOSSES.index(loss),
            int(arch.trainable_subsampling),
            len(pairs),
            *[out for out, _ in pairs],
            *[inp for _, inp in pairs],
        ]
        weights = [found.get(name) for name in SLOTS]
        sizes = [0 if t is None else t.numel() for t in weights]
        return cls(
            (ctypes.c_int32 * len(header))(*header),
            (ctypes.c_float * 2)(arch.amplitude, arch.slope),
            (ctypes.c_int64 * len(SLOTS))(*sizes),
            weights,
        )

    @property
    def parameters(self) -> int:
        return sum(self.sizes)

    def arguments(self) -> tuple[ctypes.Array, ...]:
        """What every engine call begins with, as describe() reads it: the header, the squash, the slots' sizes
        and the weights' addresses (the C code reads and updates the weights in place)."""
        pointers = (ctypes.c_void_p * len(SLOTS))(*[None if t is None else t.data_ptr() for t in self.weights])
        return self.header, self.squash, self.sizes, pointers


def flat(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-weight values by state_dict name, flattened in the engine's slot order (W1 ... BO), as C reads them."""
    return torch.cat([tensors[name].reshape(-1) for name in SLOTS if name in tensors])


def unflat(values: torch.Tensor, model: LeNet1) -> dict[str, torch.Tensor]:
    """The inverse of ``flat`` for ``model``'s weights."""
    shapes = [
        (name, tensor.shape) for name, tensor in sorted(model.named_parameters(), key=lambda item: SLOTS.index(item[0]))
    ]
    parts = values.split([math.prod(shape) for _, shape in shapes])
    return {name: part.reshape(shape) for (name, shape), part in zip(shapes, parts)}
