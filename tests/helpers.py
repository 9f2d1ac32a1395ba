"""Small generated MNIST-shaped data shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from lenet1.data import idx

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """../shared beside the checkout: in CI (CI=true) its absence is a failure, elsewhere a skip."""
    import pytest

    shared = ROOT.parent / "shared"
    if not shared.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{shared} is missing: CI provides ../shared beside the checkout")
        pytest.skip(f"{shared} not present (CI provides it)")
    return shared


def fake_mnist(raw_dir: Path, train: int = 600, test: int = 100, seed: int = 0) -> None:
    """Write the four MNIST IDX files with random pixels and balanced-ish labels."""
    rng = np.random.default_rng(seed)
    raw_dir.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", train), ("t10k", test)):
        idx.write_images(raw_dir / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        idx.write_labels(raw_dir / f"{prefix}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))


def write_params(directory: Path, **changes: dict) -> Path:
    """A copy of the repository's params.yaml in ``directory`` with section-level ``changes``."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in changes.items():
        params[section].update(values)
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def run_stage(name: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``python -m stages.<name>`` in ``cwd`` as DVC would, with the repository importable."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", f"stages.{name}"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
