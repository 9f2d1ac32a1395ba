"""LeNet-1's size as the paper counts it (p. 402): "4,635 units, 98,442
connections, and 2,578 independent parameters", computed from a built model.

A connection is a weighted input of a unit, its bias counted as one more (a
link from an always-on unit); shared weights count once as parameters but
once per unit as connections.  The units are the 28x28 = 784 input units,
every unit of H1 (2,304), H2 (576), H3 (768), H4 (192) and the 10 outputs,
plus that one bias unit: 784 + 3,850 + 1 = 4,635.
"""

from __future__ import annotations

import torch

from torch import nn

from lenet1.model import KERNEL, Convolution, LeNet1, Subsampling

LAYERS = ("h1", "h2", "h3", "h4", "out")


def layer_shapes(model: LeNet1) -> dict[str, tuple[int, ...]]:
    """The shape of one digit's units in each layer, from a forward pass."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        getattr(model, name).register_forward_hook(
            lambda module, inputs, output, name=name: shapes.__setitem__(name, tuple(output.shape[1:]))
        )
        for name in LAYERS
    ]
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    for hook in hooks:
        hook.remove()
    return shapes


def _inputs_per_unit(layer: torch.nn.Module) -> list[int]:
    """Connections of one unit of each map (or of each output), bias included."""
    if isinstance(layer, Convolution):
        return [len(inputs) * KERNEL * KERNEL + 1 for inputs in layer.table]
    if isinstance(layer, Subsampling):
        return [2 * 2 + layer.trainable] * layer.maps
    if isinstance(layer, nn.Linear):
        return [layer.weight.shape[1] + 1] * layer.weight.shape[0]
    raise TypeError(f"no connection count for {type(layer).__name__}")


def connections(model: LeNet1) -> dict[str, int]:
    """Connections per layer: for each map, its units times the connections of one unit."""
    counts = {}
    for name, shape in layer_shapes(model).items():
        units_per_map = 1 if len(shape) == 1 else shape[1] * shape[2]
        counts[name] = sum(per_unit * units_per_map for per_unit in _inputs_per_unit(getattr(model, name)))
    return counts


def units(model: LeNet1) -> int:
    """Input units, every unit of every layer, and the one bias unit."""
    layers = sum(torch.Size(shape).numel() for shape in layer_shapes(model).values())
    return 28 * 28 + layers + 1
