"""Deterministic mode gives the same weights whatever the threads, the CPU and the user's environment.

``tests/weights_probe.py`` trains a few hundred steps with the exact engine
and prints the weights' SHA-256, for each variant x loss.  Here it runs with 1 and
2 threads, with the variables that make stock PyTorch pick other kernels (ATen's
instruction set, MKL's code path), built by GCC and by clang, and under emulated
Intel and AMD x86-64 CPUs and an emulated arm64 (../shared/cpu-emulation, which
.ci/run installs: in CI a missing emulator or compiler fails, elsewhere it skips).
One hash must come out.  The control shows that fast mode does change with the
instruction set, so these variables do reach torch and the test can fail.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, shared_dir

PROBE = ROOT / "tests" / "weights_probe.py"
CPU_FLAGS = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
HAS_AVX512 = " avx512f" in CPU_FLAGS
CASES = [
    ("full", "cross_entropy"),
    ("full", "mse"),
    ("paper", "cross_entropy"),
    ("paper", "mse"),
    ("paper", "mse", "sdlm"),
    ("full", "cross_entropy", "sdlm"),
]  # sdlm: at batch 1, the narrow build
ENVIRONMENTS = [
    (1, {}),
    (2, {}),
    (3, {}),
    (5, {}),
    (2, {"ATEN_CPU_CAPABILITY": "default"}),
    (1, {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}),
    # ATen obeys this variable without asking the CPU: without AVX-512 torch dies of SIGILL, ours or not.
    pytest.param(
        2,
        {"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
        marks=pytest.mark.skipif(not HAS_AVX512, reason="ATen's avx512 kernels need a CPU with AVX-512"),
    ),
    (2, {"MKL_CBWR": "COMPATIBLE"}),
    (1, {"MKL_CBWR": "AVX2,STRICT"}),
]
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "LENET1_THREADS")


def probe(
    command: list[str],
    steps: int,
    threads: int = 1,
    env: dict | None = None,
    extra: tuple[str, ...] = (),
    cases: list[tuple[str, ...]] = CASES,
) -> dict[tuple[str, ...], str]:
    """Each case's weight hash after ``steps`` probe steps, all cases in one process of ``command``."""
    clean = {k: v for k, v in os.environ.items() if k not in KERNEL_VARIABLES}
    names = ",".join(":".join(case) for case in cases)
    result = subprocess.run(
        [*command, str(PROBE), "--steps", str(steps), "--cases", names, "--threads", str(threads), *extra],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=3000,
    )
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    return {tuple(case.split(":")): digest for digest, case, *_ in lines}


# The weights after 300 probe steps: the tests below compare machines, this one compares commits.  A
# deliberate change of the arithmetic updates these and redoes dvc.lock and results/ from real runs.
PINNED = {
    ("full", "cross_entropy"): "79bb56a7831394cb974588e62e0f1d0bd1b1d0419d272ba5291a1acd7a1d6243",
    ("full", "mse"): "e32c8aa3cff2919106e54789a27bafb4d22477316f199850f5897d378d80ed87",
    ("paper", "cross_entropy"): "a6a4d09369d30a69b092f820508545d94a91ea4790f49ebb2295fee5c1df39a9",
    ("paper", "mse"): "8529c84932e1cb1a9ee311ef2bca39b22a1166042319c042bbc133b284d320bc",
    ("paper", "mse", "sdlm"): "38d116215aa0395fbd3b8647cc4e51c84081a286dfd27533b2576c865ecfe48d",
    ("full", "cross_entropy", "sdlm"): "499b9d7060f0c3afcc7783f96baceddc9ce3e26701fffdcac4ed2d8a8103ff74",
}


def test_exact_weights_are_the_pinned_bits():
    assert probe([sys.executable], 300) == PINNED


def test_the_docs_quote_the_pinned_hashes():
    """A user checks a new machine against docs/reproducibility.md: it must give these, not older ones."""
    text = (ROOT / "docs" / "reproducibility.md").read_text()
    names = {"cross_entropy": "cross-entropy", "mse": "MSE"}
    quoted = {
        (variant, loss): digest for variant, loss, digest in re.findall(r"`(\w+)`/([\w-]+)\s+`([0-9a-f]{8})…`", text)
    }
    assert quoted == {
        (variant, names[loss]): digest[:8] for (variant, loss, *rest), digest in PINNED.items() if not rest
    }


def missing(tool: str) -> None:
    """Skip where ``tool`` is absent; in CI, which installs it (.ci/run), fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{tool} is missing: .ci/run installs it")
    pytest.skip(f"{tool} not installed here (.ci/run installs it)")


@pytest.mark.slow
def test_clang_builds_the_bits_gcc_builds(tmp_path):
    if shutil.which("clang") is None:
        missing("clang")
    gcc = probe([sys.executable], 300, env={"CC": "gcc", "LENET1_CACHE": str(tmp_path / "gcc")})
    clang = probe([sys.executable], 300, env={"CC": "clang", "LENET1_CACHE": str(tmp_path / "clang")})
    assert gcc == clang == PINNED


@pytest.mark.slow
@pytest.mark.parametrize("threads, env", ENVIRONMENTS)
def test_same_weights_for_any_threads_and_kernel_variables(threads, env):
    assert probe([sys.executable], 300, threads, env) == PINNED


@pytest.mark.slow
@pytest.mark.skipif(not HAS_AVX512, reason="needs a CPU with AVX-512 to show the instruction set matters")
def test_fast_mode_does_depend_on_the_instruction_set():
    avx2 = probe([sys.executable], 100, 1, {"ATEN_CPU_CAPABILITY": "avx2"}, ("--fast",), CASES[:1])
    avx512 = probe([sys.executable], 100, 1, {"ATEN_CPU_CAPABILITY": "avx512"}, ("--fast",), CASES[:1])
    assert avx2 != avx512


def emulator(cpu: str) -> list[str]:
    """The command that runs a Python script under an emulated ``cpu``."""
    if cpu == "arm64":
        arm64 = Path(os.environ.get("ARM64_ENV", Path.home() / "emu-arm64")) / "python"
        if not arm64.exists():
            missing(f"the arm64 environment {arm64} (../shared/cpu-emulation/setup-arm64.sh)")
        return [str(arm64)]
    if shutil.which("qemu-x86_64-static") is None:
        missing("qemu-x86_64-static (Debian's qemu-user-static)")
    return ["bash", str(shared_dir() / "cpu-emulation" / "x86-vendor.sh"), cpu]  # an Intel or an AMD CPUID


# Every combination runs in the exact engine: its AVX2 copy on the emulated x86-64 CPUs, its NEON code
# (built by aarch64-linux-gnu-gcc) on arm64.  The four run in one emulated process per CPU (starting torch
# under qemu costs more than the steps); fewer steps where emulating x86-64's AVX2 is slow.
EMULATED = [("Haswell", 60), ("EPYC-Rome", 60), ("arm64", 300)]


@pytest.mark.slow
@pytest.mark.parametrize("cpu, steps", EMULATED)
def test_same_weights_on_emulated_intel_amd_and_arm64(cpu, steps):
    command = emulator(cpu)
    native = PINNED if steps == 300 else probe([sys.executable], steps)
    assert probe(command, steps, env={"PYTHON": sys.executable}) == native, cpu


MALLINFO_CHECK = """
import ctypes, sys
import torch
from lenet1.pipeline.determinism import keep_freed_memory
class MallInfo(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t)
                for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo
if sys.argv[1] == "keep":
    assert keep_freed_memory()
before = libc.mallinfo2().hblks
buffer = torch.empty(120 * 2**20 // 4)  # 120 MiB, more than glibc's mmap threshold can grow to (32 MiB on 64-bit)
print(libc.mallinfo2().hblks - before)
"""


def glibc_with_mallinfo2() -> bool:
    import ctypes
    import platform

    name, version = platform.libc_ver()
    return (
        name == "glibc" and tuple(map(int, version.split("."))) >= (2, 33) and hasattr(ctypes.CDLL(None), "mallinfo2")
    )


@pytest.mark.skipif(not glibc_with_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")
@pytest.mark.parametrize("mode, new_mappings", [("keep", "0"), ("default", "1")])
def test_freed_buffers_are_kept_in_the_heap(mode, new_mappings):
    # The default case is the control: without keep_freed_memory glibc maps a 120 MiB block afresh.
    # Another allocator (LD_PRELOAD) or malloc tunables would change the control, so none is passed on.
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    result = subprocess.run(
        [sys.executable, "-c", MALLINFO_CHECK, mode], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == new_mappings


IMPORT_CHECK = """
import gc, sys
from lenet1.pipeline.determinism import import_torch
before = gc.get_stats()[0]["collections"]
import_torch()
collections = gc.get_stats()[0]["collections"] - before
print(collections, gc.isenabled(), gc.get_freeze_count() > 100_000, "torch" in sys.modules)
"""


def test_import_torch_pauses_the_collector_and_leaves_it_on_with_torch_frozen():
    # No collection during the import (a plain `import torch` runs about 400); then a stage trains, so the
    # collector must be back on, with torch's own objects out of its walks.
    result = subprocess.run([sys.executable, "-c", IMPORT_CHECK], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["0", "True", "True", "True"]
