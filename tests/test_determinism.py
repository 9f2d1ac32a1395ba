"""Deterministic mode gives the same weights whatever the thread count or CPU instruction set.

Each run is the real train stage in a subprocess, with the environment a
user's machine might have.  The control runs show that the same variables do
change the weights when deterministic mode is off, so the test can fail.
"""
import hashlib
import os
import subprocess
import sys

import pytest

from lenet1.model import load_model
from lenet1.split import make_splits, write_splits
from tests.helpers import ROOT, fake_mnist, write_params

CPU_FLAGS = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
HAS_AVX512 = " avx512f" in CPU_FLAGS


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory with prepared data: 4,000 training digits, i.e. 250 steps of 16."""
    root = tmp_path_factory.mktemp("determinism")
    fake_mnist(root / "raw", train=4400, test=100, seed=1)
    write_splits(make_splits(root / "raw", 400, seed=0), root / "data" / "prepared")
    return root


def train_weights_digest(workdir, deterministic: bool, threads: int, env: dict, variant: str = "full") -> str:
    write_params(workdir, train={"variant": variant, "epochs": 1, "batch_size": 16, "lr": 0.1, "threads": threads,
                                 "deterministic": deterministic})
    clean = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")}
    result = subprocess.run(
        [sys.executable, "-m", "stages.train"], cwd=workdir, env={**clean, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    model, _ = load_model(workdir / "models" / "lenet1.pt")
    weights = b"".join(tensor.numpy().tobytes() for tensor in model.state_dict().values())
    return hashlib.sha256(weights).hexdigest()


ENVIRONMENTS = [
    (1, {}),
    (2, {}),
    (2, {"ATEN_CPU_CAPABILITY": "default"}),
    (2, {"ATEN_CPU_CAPABILITY": "avx2"}),
    (1, {"ATEN_CPU_CAPABILITY": "avx512"}),
    (2, {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}),
    (2, {"MKL_ENABLE_INSTRUCTIONS": "AVX512"}),
]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["full", "paper"])
def test_deterministic_mode_is_independent_of_threads_and_instruction_set(workdir, variant):
    digests = {
        f"threads={threads} {env}": train_weights_digest(workdir, True, threads, env, variant) for threads, env in ENVIRONMENTS
    }
    assert len(set(digests.values())) == 1, digests


@pytest.mark.slow
@pytest.mark.skipif(not HAS_AVX512, reason="needs a CPU with AVX-512 to show the instruction set matters")
def test_fast_mode_does_depend_on_the_instruction_set(workdir):
    avx2 = train_weights_digest(workdir, False, 1, {"ATEN_CPU_CAPABILITY": "avx2"})
    avx512 = train_weights_digest(workdir, False, 1, {"ATEN_CPU_CAPABILITY": "avx512"})
    assert avx2 != avx512


def test_configure_environment_refuses_after_torch_import():
    from lenet1.determinism import configure_environment

    assert "torch" in sys.modules
    saved = {key: os.environ.get(key) for key in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    try:
        os.environ.pop("ATEN_CPU_CAPABILITY", None)
        with pytest.raises(RuntimeError, match="before torch is imported"):
            configure_environment(True, 1)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
