"""The compiled engine builds (``lenet1.engine.build`` compiles and caches them) and which one a step takes: the
lane count of its image groups and this CPU's instruction set.  Lane for lane the same operations, so the same bits.
"""

from __future__ import annotations

import ctypes
import functools
import platform

import torch

from lenet1.engine.build import library, prepare

NARROW_LANES, NARROW_BELOW = 2, 4  # below batch 4, 8 lanes would compute mostly empty images (7 of 8 at batch 1)
NARROW_FLAGS = (f"-DLANES={NARROW_LANES}",)
AVX512_LANES = 16  # one AVX-512 register of floats: bench/README.md measures it
AVX512_FLAGS = (f"-DLANES={AVX512_LANES}",)


def library_for(images: int) -> ctypes.CDLL:
    """The engine for steps of ``images`` images: below NARROW_BELOW, the build whose groups hold NARROW_LANES
    images (a step on one image then computes 2 lanes, not 8); on a CPU with AVX-512, when each thread gets a
    group of AVX512_LANES, the build of that many; else 8.  The same source, lane for lane the same operations,
    so the same bits (tests/test_sdlm.py and tests/test_engine.py check it)."""
    if images < NARROW_BELOW:
        return load(NARROW_FLAGS)
    if images >= AVX512_LANES * torch.get_num_threads() and avx512():
        return load(AVX512_FLAGS)
    return load()


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


def load(flags: tuple[str, ...] = ()) -> ctypes.CDLL:
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
    return load().lenet1_version()
