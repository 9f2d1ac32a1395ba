"""Threads and deterministic mode.

Deterministic mode needs no environment variables: the exact engine
(``lenet1.engine``, C code explained at the top of ``csrc/engine.c``) computes
every float operation itself, so no kernel choice can change its result (no BLAS,
no vendor math library, no fused multiply-add, sums in a fixed order).  So MKL_CBWR, MKL_ENABLE_INSTRUCTIONS or
ATEN_CPU_CAPABILITY, which pick kernels per CPU, cannot change the weights, and a user who has set them
keeps them.  What is left here is the thread count (read by OpenMP and MKL
when torch is imported, and passed to the C code from ``torch.get_num_threads``),
the platforms the promise covers, and one allocator setting that only changes
speed.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.metadata
import os
import platform

from lenet1.errors import InputError

# What deterministic mode is tested to reproduce bit for bit (README, "Bit-exact reproducibility").
COVERED_SYSTEMS = {("Linux", "x86_64"), ("Linux", "aarch64")}
PINNED_TORCH = "2.14.1"
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
MAX_THREADS_PER_CPU = 4  # LENET1_THREADS' bound: far more threads than CPUs failed to start, or crashed OpenMP
TRIM_NEVER = 2**31 - 1  # mallopt takes an int: the largest keeps the heap's free top for reuse


def thread_count() -> int:
    """Threads for torch: $LENET1_THREADS, else every CPU this process may use.

    An execution setting, not a param: the exact engine gives the same bits
    for any count, so it stays out of params.yaml, dvc.lock and the model.
    Set LENET1_THREADS=1 when running several experiments at once.
    """
    value, most = os.environ.get("LENET1_THREADS", ""), MAX_THREADS_PER_CPU * (os.cpu_count() or 1)
    if value:
        if not value.isdigit() or not 1 <= int(value) <= most:
            raise InputError(
                f"LENET1_THREADS={value!r}: expected a whole number from 1 to {most} "
                f"({MAX_THREADS_PER_CPU} per CPU: more only wait for each other)"
            )
        return int(value)
    return len(os.sched_getaffinity(0))


def configure_environment(threads: int) -> None:
    """Set the thread variables OpenMP and MKL read at import time.  Call before importing torch."""
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[key] = str(threads)


def import_torch() -> None:
    """Import torch with Python's cycle collector paused, then freeze every object made so far.

    The import makes some 270,000 lasting objects and hardly any garbage, yet the collector would run
    about 400 times while they are made, and later ones would walk them again; frozen (``gc.freeze``), they
    are left out of every collection.  What it saves the train and evaluate stages: bench/README.md
    (stage_cost.sh).  Call after configure_environment, before anything else imports torch.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        import torch  # noqa: F401

        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()


def configure_torch(threads: int) -> None:
    """Fix torch's thread count and keep freed buffers in the heap."""
    import torch

    torch.set_num_threads(threads)
    keep_freed_memory()


def keep_freed_memory() -> bool:
    """Ask glibc to serve every block from its heap and keep freed ones for reuse, never returning them.

    Large blocks are freed and allocated again and again (the exact engine's buffers at every call, stock
    PyTorch's kernel buffers at every step).  Above glibc's mmap threshold each one would be a fresh mmap
    whose pages the kernel faults in and zeroes again; from the heap they are reused.  The price is
    memory: freed blocks stay with the process.  Arithmetic is untouched.  False, and nothing done, where
    the C library is not glibc.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_NEVER))


def cpu_info(keys: tuple[str, ...]) -> str:
    """The first of ``keys`` in /proc/cpuinfo (e.g. vendor_id: GenuineIntel; CPU implementer: 0x41 on arm64)."""
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
    except OSError:
        return platform.processor() or "unknown"
    return next((line.split(":", 1)[1].strip() for key in keys for line in lines if line.startswith(key)), "unknown")


def platform_record(exact: bool, threads: int) -> dict[str, str]:
    """Where and how a run was computed, for the summary: runs pool across machines only inside the promise."""
    return {
        "system": platform.system(),
        "machine": platform.machine(),
        "cpu_vendor": cpu_info(("vendor_id", "CPU implementer")),
        "cpu_model": cpu_info(("model name", "CPU part")),
        "threads": str(threads),
        "torch": importlib.metadata.version("torch").split("+")[0],
        "numerics": "exact" if exact else "fast",
        "bit_exact_promise": "covered" if exact and platform_note() is None else "not covered",
    }


def platform_note() -> str | None:
    """None on a platform the bit-exact promise covers; else one line saying why not."""
    system, machine = platform.system(), platform.machine()
    torch_version = importlib.metadata.version("torch").split("+")[0]
    if (system, machine) in COVERED_SYSTEMS and torch_version == PINNED_TORCH:
        return None
    return (
        f"{system} {machine} with torch {torch_version} is outside the bit-exact promise "
        f"(Linux x86-64 or arm64 with torch {PINNED_TORCH}): results may differ in the last bits"
    )
