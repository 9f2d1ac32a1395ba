"""LeNet-1's architecture as data, and its two losses' names: what ``lenet1/model.py``'s torch module and the exact
engine (``lenet1/engine``) are both built from.  Torch-free, so that the validate stage reads the variants
without importing torch; ``lenet1/model.py``'s docstring explains the network.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL_H2 = ((0, 1, 2, 3),) * 12
# Table 1 (p. 400), maps numbered from 0: H3 map o <- the H2 maps in H3_TABLE[o].
H3_TABLE: tuple[tuple[int, ...], ...] = (
    (0,),
    (0, 1),
    (0, 1),
    (1,),
    (0, 1),
    (0, 1),
    (2,),
    (2, 3),
    (2, 3),
    (3,),
    (2, 3),
    (2, 3),
)


@dataclass(frozen=True)
class Architecture:
    """What the torch module and the exact engine are both built from."""

    h3_table: tuple[tuple[int, ...], ...]  # H3 map o reads the H2 maps h3_table[o]
    trainable_subsampling: bool  # H2, H4: squash(coefficient * average + bias); else the plain average
    amplitude: float  # squash(a) = amplitude * tanh(slope * a)
    slope: float


ARCHITECTURES = {
    "full": Architecture(ALL_H2, trainable_subsampling=False, amplitude=1.0, slope=1.0),
    "paper": Architecture(H3_TABLE, trainable_subsampling=True, amplitude=1.7159, slope=2 / 3),
}
VARIANTS = tuple(ARCHITECTURES)  # the allowed train.variant values
# The losses the network trains with (lenet1/loss.py); the engine's layout names them by their index here.
LOSSES = ("cross_entropy", "mse")  # the allowed train.loss values
