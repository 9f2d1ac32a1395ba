"""Threads and deterministic mode.

Deterministic mode needs no environment variables: ``lenet1.numerics`` builds
every float operation so that no kernel choice can change its result (no
BLAS rounding, no vendor math library, no fused multiply-add, sums in a
fixed order).  So MKL_CBWR, MKL_ENABLE_INSTRUCTIONS or ATEN_CPU_CAPABILITY,
which pick kernels per CPU, cannot change the weights, and a user who has set
them keeps them.  What is left here is the thread count, which torch and MKL
read when torch is imported, and torch's own switches.
"""
from __future__ import annotations

import os
from lenet1.errors import InputError


def thread_count() -> int:
    """Threads for torch: $LENET1_THREADS, else every CPU this process may use.

    An execution setting, not a param: the exact numerics give the same bits
    for any count, so it stays out of params.yaml, dvc.lock and the model.
    Set LENET1_THREADS=1 when running several experiments at once.
    """
    value = os.environ.get("LENET1_THREADS", "")
    if value:
        if not value.isdigit() or int(value) < 1:
            raise InputError(f"LENET1_THREADS={value!r}: expected a whole number >= 1")
        return int(value)
    return len(os.sched_getaffinity(0))


def configure_environment(threads: int) -> None:
    """Set the thread variables OpenMP and MKL read at import time.  Call before importing torch."""
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[key] = str(threads)


def configure_torch(threads: int) -> None:
    """Fix torch's thread count."""
    import torch

    torch.set_num_threads(threads)
