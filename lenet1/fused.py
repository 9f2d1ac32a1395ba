"""Deterministic LeNet-1 'full' with cross-entropy: a whole SGD step in one C call (``csrc/``).

The C code computes with one vector lane per image, so its bits do not depend on the CPU's vector
width or the thread count (see the comment at the top of ``csrc/fused.c``).  It is compiled once per
machine and source, with the C compiler found as ``$CC`` or ``cc``, into ``$LENET1_CACHE`` (default
``~/.cache/lenet1-dvc``).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import os
import platform
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


class CompilerMissing(InputError):
    """No working C compiler for this machine."""


def computes(model: torch.nn.Module) -> bool:
    """Whether the fused code computes this model's outputs: LeNet-1 'full' in exact (deterministic) mode."""
    return getattr(model, "variant", None) == "full" and model.ops.exact


def trains(model: torch.nn.Module, loss_fn: object) -> bool:
    """Whether the fused code trains this model with this loss: computes(model), with cross-entropy."""
    return computes(model) and loss_fn is model.ops.cross_entropy


def compiler() -> list[str]:
    """The C compiler for this machine's architecture: $CC, cc, or the Debian cross compiler for it."""
    machine = platform.machine()
    candidates = [os.environ.get("CC") or "cc", f"{machine}-linux-gnu-gcc"]
    for name in candidates:
        path = shutil.which(name)
        if path is None:
            continue
        target = subprocess.run([path, "-dumpmachine"], capture_output=True, text=True).stdout.strip()
        if target.startswith(machine):
            return [path]
    raise CompilerMissing(
        f"deterministic training of LeNet-1 'full' needs a C compiler for {machine} ({' or '.join(candidates)} "
        "not found or for another architecture): install one (Debian/Ubuntu: `sudo apt install gcc`) or set CC")


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lenet1-dvc"
    return Path(os.environ.get("LENET1_CACHE") or default)


def library() -> ctypes.CDLL:
    """fused.c compiled for this machine (with EXTRA_FLAGS), built on first use and kept in cache_dir()."""
    return build(EXTRA_FLAGS)


@functools.cache
def build(extra_flags: tuple[str, ...]) -> ctypes.CDLL:
    command, flags = compiler(), (*FLAGS, *extra_flags)
    version = subprocess.run([*command, "--version"], capture_output=True, text=True).stdout
    texts = [path.read_text() for path in sorted(SOURCES.glob("*.[ch]"))]
    key = hashlib.sha256("\0".join([*texts, *flags, version, platform.machine()]).encode()).hexdigest()
    path = cache_dir() / f"fused-{key[:16]}.so"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            built = Path(tmp) / path.name
            result = subprocess.run([*command, *flags, str(SOURCE), "-o", str(built), *LIBRARIES], capture_output=True, text=True)
            if result.returncode != 0:
                raise CompilerMissing(f"compiling {SOURCE} failed:\n{result.stderr.strip()}")
            os.replace(built, path)  # atomic: parallel stages never load a half-written file
    lib = ctypes.CDLL(str(path))
    pointer, floats = ctypes.c_void_p, ctypes.c_float
    lib.lenet1_forward.argtypes = [pointer, pointer, ctypes.c_int, pointer, ctypes.c_int]
    lib.lenet1_train_step.argtypes = [pointer, pointer, pointer, ctypes.c_int, floats, floats, pointer, pointer, ctypes.c_int]
    return lib


def _parameters(model: torch.nn.Module) -> ctypes.Array:
    """Pointers to the weights, in fused.c's order; the C code reads and updates them in place."""
    chosen = (model.h1.weight, model.h1.bias, model.h3.weight, model.h3.bias, model.out.weight, model.out.bias)
    if not all(t.dtype == torch.float32 and t.is_contiguous() for t in chosen):
        raise ValueError("the fused step needs float32, contiguous parameters")
    return (ctypes.c_void_p * 6)(*[t.data_ptr() for t in chosen])


def _images(inputs: torch.Tensor) -> torch.Tensor:
    if inputs.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected inputs of shape (N, 1, 28, 28), got {tuple(inputs.shape)}")
    return inputs.to(torch.float32).contiguous()


def forward(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The ten outputs for each input, as the fused training step computes them."""
    images = _images(inputs)
    pointers = _parameters(model)
    logits = torch.empty(len(images), 10)
    if library().lenet1_forward(pointers, images.data_ptr(), len(images), logits.data_ptr(), torch.get_num_threads()):
        raise RuntimeError("lenet1_forward failed: no memory or threads left")
    return logits


def train_step(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, lr: float,
               weight_decay: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on the batch's mean cross-entropy, in place; the loss and the outputs before the step."""
    images, labels = _images(inputs), labels.to(torch.int64).contiguous()
    pointers = _parameters(model)
    logits, losses = torch.empty(len(images), 10), torch.empty(len(images), dtype=torch.float64)
    status = library().lenet1_train_step(pointers, images.data_ptr(), labels.data_ptr(), len(images), lr, weight_decay,
                                         logits.data_ptr(), losses.data_ptr(), torch.get_num_threads())
    if status:
        raise RuntimeError("lenet1_train_step failed: a label outside 0-9, or no memory or threads left")
    # fsum is exact, so the mean does not depend on how a CPU would vectorise a sum.
    return torch.tensor(math.fsum(losses.tolist()) / len(images), dtype=torch.float32), logits
