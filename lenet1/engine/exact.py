"""The exact engine's boundary: a LeNet-1's architecture and weights as the C code (``csrc/``) reads them,
checked on both sides, and its three calls: forward (outputs, losses, unit states), training, the version.

Why the bits are the same on every CPU is explained once, at the top of ``csrc/engine.c``.
"""

from __future__ import annotations

import ctypes
import functools
import math
import platform
import threading
from dataclasses import dataclass
from collections.abc import Callable

import torch

from lenet1.engine.build import library, prepare
from lenet1.errors import InputError
from lenet1.architecture import LOSSES
from lenet1.model import LeNet1

MAGIC, VERSION = 0x4C4E3101, 4  # csrc/layout.h's ENGINE_MAGIC and ENGINE_VERSION
NARROW_LANES, NARROW_BELOW = 2, 4  # below batch 4, 8 lanes would compute mostly empty images (7 of 8 at batch 1)
NARROW_FLAGS = (f"-DLANES={NARROW_LANES}",)
AVX512_LANES = 16  # one AVX-512 register of floats: bench/README.md measures it
AVX512_FLAGS = (f"-DLANES={AVX512_LANES}",)
FAILED_RESOURCES, FAILED_LABEL, FAILED_LAYOUT, STOPPED = 1, 2, 4, 8  # the C functions' error bits
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

    def pointers(self) -> ctypes.Array:
        """The weights' addresses; the C code reads and updates them in place."""
        return (ctypes.c_void_p * len(SLOTS))(*[None if t is None else t.data_ptr() for t in self.weights])


def _images(inputs: torch.Tensor) -> torch.Tensor:
    if inputs.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected inputs of shape (N, 1, 28, 28), got {tuple(inputs.shape)}")
    return inputs.to("cpu", torch.float32).contiguous()


def _labels(labels: torch.Tensor, count: int) -> torch.Tensor:
    labels = labels.to("cpu", torch.int64).contiguous()
    if labels.shape != (count,):
        raise ValueError(f"expected {count} labels, got shape {tuple(labels.shape)}")
    return labels


def _check(status: int, what: str) -> None:
    if status & FAILED_LAYOUT:
        raise LayoutError(
            f"{what}: the C engine refused the layout (its version is {version()}, this side's {VERSION}); "
            "nothing was computed"
        )
    if status & STOPPED:
        raise KeyboardInterrupt(f"{what}: stopped between steps")
    if status & FAILED_LABEL:
        raise InputError(f"{what}: a label outside 0-9; nothing was updated")
    if status:
        raise MemoryError(f"{what}: out of memory or threads; nothing was updated")


def library_for(images: int) -> ctypes.CDLL:
    """The engine for steps of ``images`` images: below NARROW_BELOW, the build whose groups hold NARROW_LANES
    images (a step on one image then computes 2 lanes, not 8); on a CPU with AVX-512, when each thread gets a
    group of AVX512_LANES, the build of that many; else 8.  The same source, lane for lane the same operations,
    so the same bits (tests/test_sdlm.py and tests/test_engine.py check it)."""
    if images < NARROW_BELOW:
        return _library(NARROW_FLAGS)
    if images >= AVX512_LANES * torch.get_num_threads() and avx512():
        return _library(AVX512_FLAGS)
    return _library()


def avx512() -> bool:
    return torch.backends.cpu.get_cpu_capability() == "AVX512"


@functools.cache
def target_flags() -> tuple[str, ...]:
    """x86-64: the one instruction set of this CPU (as torch reads it) for the hot code (csrc/platform.h's
    LENET1_TARGET), so that a new machine compiles one copy of it per build, not three; the bits are the same."""
    if platform.machine() != "x86_64":
        return ()
    names = {"AVX512": '"avx512f"', "AVX2": '"avx2"'}
    capability = torch.backends.cpu.get_cpu_capability()
    return (f"-DLENET1_TARGET={names[capability]}",) if capability in names else ("-DLENET1_BASELINE_ONLY",)


@functools.cache
def _prepared() -> None:
    """Every build library_for may choose on this machine, compiled together where the cache lacks them."""
    prepare([(*target_flags(), *flags) for flags in (NARROW_FLAGS, (), *([AVX512_FLAGS] if avx512() else []))])


def _library(flags: tuple[str, ...] = ()) -> ctypes.CDLL:
    """The compiled engine, with its functions' argument types (ctypes would guess them from the values)."""
    _prepared()
    lib = library((*target_flags(), *flags))
    if not getattr(lib, "typed", False):
        pointer, i32 = ctypes.c_void_p, ctypes.c_int
        lib.lenet1_forward.argtypes = [pointer] * 6 + [i32] + [pointer] * 3 + [i32]
        lib.lenet1_train.argtypes = [pointer] * 7 + [
            i32,
            i32,
            ctypes.c_float,
            pointer,
            ctypes.c_float,
            pointer,
            pointer,
            i32,
        ]
        lib.lenet1_curvature.argtypes = [pointer] * 6 + [i32, pointer, i32]
        lib.lenet1_stop.argtypes = [i32]
        lib.typed = True
    return lib


def version() -> int:
    return _library().lenet1_version()


def forward(
    layout: Layout, inputs: torch.Tensor, labels: torch.Tensor | None = None, states: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor] | None]:
    """The ten outputs of each input; with labels, each image's loss (float64); with states, H1-H4."""
    images = _images(inputs)
    count = len(images)
    labels = None if labels is None else _labels(labels, count)
    logits = torch.empty(count, 10, dtype=torch.float32)
    losses = None if labels is None else torch.empty(count, dtype=torch.float64)
    sizes = [math.prod(shape) for shape in STATE_SHAPES.values()]
    buffer = torch.empty(count, sum(sizes), dtype=torch.float32) if states else None
    status = library_for(count).lenet1_forward(
        layout.header,
        layout.squash,
        layout.sizes,
        layout.pointers(),
        images.data_ptr(),
        None if labels is None else labels.data_ptr(),
        count,
        logits.data_ptr(),
        None if losses is None else losses.data_ptr(),
        None if buffer is None else buffer.data_ptr(),
        torch.get_num_threads(),
    )
    _check(status, "lenet1_forward")
    unit_states = None
    if buffer is not None:
        parts = buffer.split(sizes, dim=1)
        unit_states = {name: part.reshape(count, *shape) for (name, shape), part in zip(STATE_SHAPES.items(), parts)}
    return logits, losses, unit_states


def train(
    layout: Layout,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    order: torch.Tensor | None,
    batch_size: int,
    lr: float,
    weight_decay: float,
    rates: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SGD steps on batches of ``inputs[order]`` (or ``inputs``), all in one C call: no torch operation runs
    between steps, whose OpenMP threads would compete with the C code's for the cores.  ``rates``: one float32
    per weight in slot order (``flat``), each weight's step lr * rate * gradient (SDLM); none: lr * gradient.

    The weights are updated in place, outside autograd (as an optimizer's step under no_grad would be).
    Returns each image's loss (float64) and outputs (before its step), in batch order.
    """
    images = _images(inputs)
    labels = _labels(labels, len(images))
    count = len(images)
    if order is not None:
        order = order.to("cpu", torch.int64).contiguous()
        count = len(order)
        if count and not (0 <= int(order.min()) and int(order.max()) < len(images)):
            raise ValueError(f"order holds an index outside 0-{len(images) - 1}")
    if rates is not None and (rates.dtype != torch.float32 or rates.shape != (layout.parameters,)):
        raise ValueError(f"expected {layout.parameters} float32 rates, got {rates.dtype} of shape {tuple(rates.shape)}")
    rates = None if rates is None else rates.contiguous()
    logits = torch.empty(count, 10, dtype=torch.float32)
    losses = torch.empty(count, dtype=torch.float64)
    lib = library_for(batch_size)
    arguments = (
        layout.header,
        layout.squash,
        layout.sizes,
        layout.pointers(),
        images.data_ptr(),
        labels.data_ptr(),
        None if order is None else order.data_ptr(),
        count,
        batch_size,
        lr,
        None if rates is None else rates.data_ptr(),
        weight_decay,
        logits.data_ptr(),
        losses.data_ptr(),
        torch.get_num_threads(),
    )  # here: torch's thread count is this thread's setting
    status = stoppable(lib, lambda: lib.lenet1_train(*arguments))
    _check(status, "lenet1_train")
    return losses, logits


def stoppable(lib: ctypes.CDLL, call: Callable[[], int]) -> int:
    """``call()`` (lenet1_train) in a thread of its own, so that this one keeps handling signals: on Ctrl-C or a
    termination signal the C loop stops before its next step (lenet1_stop) and the exception goes on, at once
    rather than at the epoch's end."""
    result: list[int] = []
    lib.lenet1_stop(0)
    worker = threading.Thread(target=lambda: result.append(call()), name="lenet1_train", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.05)
    except BaseException:
        lib.lenet1_stop(1)
        worker.join()
        raise
    return result[0]


def curvature(layout: Layout, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each weight's Gauss-Newton d2E/dw^2 of the per-pattern loss, averaged over ``inputs`` (float64, slot
    order): what ``lenet1.curvature.diagonal`` defines, computed in C."""
    images = _images(inputs)
    labels = _labels(labels, len(images))
    curvatures = torch.empty(layout.parameters, dtype=torch.float64)
    status = _library().lenet1_curvature(
        layout.header,
        layout.squash,
        layout.sizes,
        layout.pointers(),
        images.data_ptr(),
        labels.data_ptr(),
        len(images),
        curvatures.data_ptr(),
        torch.get_num_threads(),
    )
    _check(status, "lenet1_curvature")
    return curvatures


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
