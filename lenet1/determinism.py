"""Bit-exact CPU training: the same model bytes for the same params on any x86-64.

PyTorch picks different kernels per CPU and per thread count: ATen's
vectorised kernels per instruction set (AVX2/AVX-512), oneDNN (mkldnn)
convolutions per instruction set, MKL's per-ISA GEMM code paths, and
reductions split across threads.  Each one changes the order of float
additions, so the weights drift apart in the last bits and then further.
Deterministic mode pins each of them to one code path:

- ``ATEN_CPU_CAPABILITY=default``: ATen's baseline x86-64 kernels (read once,
  when torch is imported);
- ``MKL_CBWR=AVX2,STRICT``: MKL's conditional numerical reproducibility
  mode: the AVX2 code path on every CPU that has AVX2 (every x86-64 CPU sold
  since about 2015), and STRICT makes GEMM results independent of the thread
  count; it also overrides a user's ``MKL_ENABLE_INSTRUCTIONS``;
- oneDNN (mkldnn) and NNPACK off, so convolutions use ATen's own
  im2col + MKL GEMM, the one path the two settings above pin down;
- ``torch.use_deterministic_algorithms(True)``.

The environment part must happen before ``import torch``, so stage entry
points call ``configure_environment`` first and import torch after it.
"""
from __future__ import annotations

import os
import sys

DETERMINISTIC_ENVIRONMENT = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "AVX2,STRICT",
}


def configure_environment(deterministic: bool, threads: int) -> None:
    """Set the variables torch and MKL read at import time.  Call before importing torch."""
    if "torch" in sys.modules and deterministic:
        current = {key: os.environ.get(key) for key in DETERMINISTIC_ENVIRONMENT}
        if current != DETERMINISTIC_ENVIRONMENT:
            raise RuntimeError(
                "deterministic mode must be configured before torch is imported "
                f"(environment now: {current}); call configure_environment first"
            )
    if deterministic:
        os.environ.update(DETERMINISTIC_ENVIRONMENT)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[key] = str(threads)


def configure_torch(deterministic: bool, threads: int) -> None:
    """Fix torch's thread count and, in deterministic mode, its algorithm choices."""
    import torch

    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = not deterministic
    torch.backends.nnpack.set_flags(not deterministic)
    torch.use_deterministic_algorithms(deterministic)
