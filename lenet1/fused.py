"""Deterministic LeNet-1 'full' in C (``csrc/``): SGD steps on the cross-entropy, one C call per batch or
per epoch, and the forward pass.

The C code computes with one vector lane per image, so its bits do not depend on the CPU's vector
width or the thread count (see the comment at the top of ``csrc/fused.c``).  It is compiled once per
machine and source, by ``$CC`` or ``cc``, into ``$LENET1_CACHE`` (default ``$XDG_CACHE_HOME/lenet1-dvc``
or ``~/.cache/lenet1-dvc``).

Its outputs differ from ``LeNet1.forward``'s exact torch path in the last bits (each is the same on
every CPU): predictions and training use this code, the feature-map figure uses the torch path.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from lenet1.errors import InputError

SOURCES = Path(__file__).with_name("csrc")  # fused.c and the headers it includes
SOURCE = SOURCES / "fused.c"
# -ffp-contract=off: no fused multiply-add, which would round once where the C code rounds twice.
FLAGS = ("-O3", "-std=gnu11", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared", "-nostdlib", "-Wno-psabi")
LIBRARIES = ("-lgcc",)  # x86-64's choice of instruction set at load time (target_clones) needs libgcc
# Tests set ("-DLENET1_BASELINE_ONLY",): x86-64's baseline (SSE2) code only, no AVX2 or AVX-512 copies.
EXTRA_FLAGS: tuple[str, ...] = ()
FAILED_RESOURCES, FAILED_LABEL = 1, 2  # the C functions' error bits


class CompilerError(InputError):
    """No working C compiler for this machine, or it failed on the source."""


def computes(model: torch.nn.Module) -> bool:
    """Whether the fused code computes this model's outputs: LeNet-1 'full' in exact (deterministic) mode."""
    return getattr(model, "variant", None) == "full" and model.ops.exact


def trains(model: torch.nn.Module, loss_fn: object) -> bool:
    """Whether the fused code trains this model with this loss: computes(model), with cross-entropy."""
    return computes(model) and loss_fn is model.ops.cross_entropy


def compiler() -> list[str]:
    """The C compiler for this machine's architecture: $CC (which may carry options), cc, or the
    Debian cross compiler for it (an emulated arm64 Python on an x86-64 host runs the host's cc)."""
    machine = platform.machine()
    candidates = [shlex.split(os.environ.get("CC") or "cc"), [f"{machine}-linux-gnu-gcc"]]
    for command in candidates:
        if not command or shutil.which(command[0]) is None:
            continue
        target = subprocess.run([*command, "-dumpmachine"], capture_output=True, text=True, timeout=60)
        if target.returncode == 0 and target.stdout.strip().startswith(machine):
            return command
    tried = " or ".join(shlex.join(command) for command in candidates)
    raise CompilerError(
        f"deterministic training of LeNet-1 'full' needs a C compiler for {machine} ({tried}: not found, "
        "failing or for another architecture): install one (Debian/Ubuntu: `sudo apt install gcc`) or set CC")


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lenet1-dvc"
    return Path(os.environ.get("LENET1_CACHE") or default)


def library() -> ctypes.CDLL:
    """The C code compiled for this machine (with EXTRA_FLAGS), built on first use and kept in cache_dir()."""
    return build(EXTRA_FLAGS)


@functools.cache
def build(extra_flags: tuple[str, ...]) -> ctypes.CDLL:
    command, flags = compiler(), (*FLAGS, *extra_flags)
    version = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60).stdout
    texts = [path.read_text() for path in sorted(SOURCES.glob("*.[ch]"))]
    key = hashlib.sha256("\0".join([*texts, *command, *flags, *LIBRARIES, version, platform.machine()]).encode()).hexdigest()
    path = cache_dir() / f"fused-{key[:16]}.so"
    try:
        lib = ctypes.CDLL(str(_compile(command, flags, path, force=False)))
    except OSError:  # a damaged file in the cache (a crash while copying it): build it again
        lib = ctypes.CDLL(str(_compile(command, flags, path, force=True)))
    pointer, floats = ctypes.c_void_p, ctypes.c_float
    lib.lenet1_forward.argtypes = [pointer, pointer, ctypes.c_int, pointer, ctypes.c_int]
    lib.lenet1_train.argtypes = [pointer, pointer, pointer, pointer, ctypes.c_int, ctypes.c_int, floats, floats, pointer,
                                 pointer, ctypes.c_int]
    return lib


def _compile(command: list[str], flags: tuple[str, ...], path: Path, force: bool) -> Path:
    if path.exists() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        built = Path(tmp) / path.name
        result = subprocess.run([*command, *flags, str(SOURCE), "-o", str(built), *LIBRARIES],
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise CompilerError(f"{shlex.join(command)} failed on {SOURCE}:\n{result.stderr.strip()}")
        os.replace(built, path)  # atomic: a process running in parallel never loads a half-written file
    return path


def _parameters(model: torch.nn.Module) -> ctypes.Array:
    """Pointers to the weights, in fused.c's order; the C code reads and updates them in place."""
    chosen = (model.h1.weight, model.h1.bias, model.h3.weight, model.h3.bias, model.out.weight, model.out.bias)
    if not all(t.dtype == torch.float32 and t.is_contiguous() and t.device.type == "cpu" for t in chosen):
        raise ValueError("the fused step needs float32, contiguous CPU parameters")
    return (ctypes.c_void_p * 6)(*[t.data_ptr() for t in chosen])


def _images(inputs: torch.Tensor) -> torch.Tensor:
    if inputs.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected inputs of shape (N, 1, 28, 28), got {tuple(inputs.shape)}")
    return inputs.to("cpu", torch.float32).contiguous()


def _check(status: int, what: str) -> None:
    if status & FAILED_LABEL:
        raise InputError(f"{what}: a label outside 0-9; nothing was updated")
    if status:
        raise MemoryError(f"{what}: out of memory or threads; nothing was updated")


def forward(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The ten outputs for each input, as the fused training step computes them."""
    images = _images(inputs)
    logits = torch.empty(len(images), 10, dtype=torch.float32)
    status = library().lenet1_forward(_parameters(model), images.data_ptr(), len(images), logits.data_ptr(),
                                      torch.get_num_threads())
    _check(status, "lenet1_forward")
    return logits


def train(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, order: torch.Tensor | None,
          batch_size: int, lr: float, weight_decay: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SGD steps on batches of ``inputs[order]`` (or ``inputs``), all in one C call: no torch operation runs
    between steps, whose OpenMP threads would compete with the C code's for the cores.

    The weights are updated in place, outside autograd (as an optimizer's step under no_grad would be): their
    ``.grad`` stays None.  Returns each image's loss (float64) and outputs (before its step), in batch order.
    """
    images, labels = _images(inputs), labels.to("cpu", torch.int64).contiguous()
    if labels.shape != (len(images),):
        raise ValueError(f"expected {len(images)} labels, got shape {tuple(labels.shape)}")
    count = len(images)
    if order is not None:
        order = order.to("cpu", torch.int64).contiguous()
        count = len(order)
        if count and not (0 <= int(order.min()) and int(order.max()) < len(images)):
            raise ValueError(f"order holds an index outside 0-{len(images) - 1}")
    logits = torch.empty(count, 10, dtype=torch.float32)
    losses = torch.empty(count, dtype=torch.float64)
    status = library().lenet1_train(_parameters(model), images.data_ptr(), labels.data_ptr(),
                                    None if order is None else order.data_ptr(), count, batch_size, lr, weight_decay,
                                    logits.data_ptr(), losses.data_ptr(), torch.get_num_threads())
    _check(status, "lenet1_train")
    return losses, logits


def batch_mean(losses: list[float]) -> torch.Tensor:
    """A batch's mean loss as a float32 scalar; fsum is exact, so no CPU's vectorised sum can change it."""
    return torch.tensor(math.fsum(losses) / len(losses), dtype=torch.float32)


def train_step(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, lr: float,
               weight_decay: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on the batch: its mean loss and its outputs before the step."""
    losses, logits = train(model, inputs, labels, None, len(inputs), lr, weight_decay)
    return batch_mean(losses.tolist()), logits


def train_epoch(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, order: torch.Tensor,
                batch_size: int, lr: float, weight_decay: float) -> tuple[float, float]:
    """SGD on ``inputs[order]`` in batches: the mean loss and accuracy seen while training, computed exactly
    as ``lenet1.train.train_epoch`` computes them from ``train_step``'s results."""
    losses, logits = train(model, inputs, labels, order, batch_size, lr, weight_decay)
    values, total = losses.tolist(), torch.zeros((), dtype=torch.float64)
    for start in range(0, len(values), batch_size):
        batch = values[start : start + batch_size]
        total += batch_mean(batch) * len(batch)
    correct = (logits.argmax(1) == labels.index_select(0, order)).sum()
    return total.item() / len(order), correct.item() / len(order)
