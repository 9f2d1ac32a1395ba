"""The exact engine's calls: forward (outputs, losses, unit states), a training epoch, the SDLM curvature; each
checks its inputs here and the C code's status after (the weights' layout: ``layout.py``; the builds: ``libraries.py``).

Why the bits are the same on every CPU is explained once, at the top of ``csrc/engine.c``.
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Callable

import torch

from lenet1.engine.layout import STATE_SHAPES, VERSION, Layout, LayoutError
from lenet1.engine.libraries import library_for, load, version
from lenet1.errors import InputError

FAILED_RESOURCES, FAILED_LABEL, FAILED_LAYOUT, STOPPED = 1, 2, 4, 8  # the C functions' error bits


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
        *layout.arguments(),
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
        *layout.arguments(),
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
    status = load().lenet1_curvature(
        *layout.arguments(),
        images.data_ptr(),
        labels.data_ptr(),
        len(images),
        curvatures.data_ptr(),
        torch.get_num_threads(),
    )
    _check(status, "lenet1_curvature")
    return curvatures
