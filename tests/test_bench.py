"""bench/train_speed.py end to end, on tiny generated data (a smoke test, not a timing)."""
import json
import math
import re
import subprocess
import sys

from lenet1.split import make_splits, write_splits
from tests.helpers import ROOT, fake_mnist

SCRIPT = ROOT / "bench" / "train_speed.py"


def run_bench(*options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *options], capture_output=True, text=True, timeout=120)


def test_bench_reports_both_loops_in_both_modes(tmp_path):
    raw, prepared, out = tmp_path / "raw", tmp_path / "prepared", tmp_path / "speed.json"
    fake_mnist(raw, train=600, test=100)
    write_splits(make_splits(raw, val_size=100, seed=0), prepared)

    done = run_bench("--raw-dir", str(raw), "--prepared-dir", str(prepared), "--images", "256",
                     "--repeats", "1", "--batch-size", "16", "--threads", "1", "--json", str(out))

    assert done.returncode == 0, done.stderr
    assert "ours/standard" in done.stdout and "deterministic mode costs" in done.stdout
    # One table row per mode: images/s ours and standard, the ratio, seconds per epoch, ATen kernels.
    rows = re.findall(r"^(deterministic|fast) +[\d,]+ +[\d,]+ +[\d.]+x +[\d.]+ +\w+$", done.stdout, re.MULTILINE)
    assert rows == ["deterministic", "fast"], done.stdout
    results = json.loads(out.read_text())
    assert results["settings"]["images"] == 256 and results["settings"]["statistic"] == "best"
    assert set(results["modes"]) == {"deterministic", "fast"}
    for mode in results["modes"].values():
        for key in ("ours_images_per_s", "standard_images_per_s", "ratio", "epoch_seconds"):
            assert mode[key] > 0 and math.isfinite(mode[key]), key
        # Both loops trained on the requested images (the standard one in whole batches).
        assert [t["images"] for t in mode["ours_timings"]] == [256]
        assert [t["images"] for t in mode["standard_timings"]] == [256]
        assert mode["ratio"] == mode["ours_images_per_s"] / mode["standard_images_per_s"]
    assert math.isfinite(results["deterministic_cost"])
    # Each worker configured its mode before importing torch.
    assert results["modes"]["deterministic"]["cpu_capability"] == "DEFAULT"


def test_bench_says_which_stage_makes_missing_data(tmp_path):
    raw = tmp_path / "raw"
    done = run_bench("--raw-dir", str(raw), "--prepared-dir", str(tmp_path / "prepared"))
    assert done.returncode == 1 and "dvc repro download" in done.stderr
    fake_mnist(raw, train=20, test=10)
    done = run_bench("--raw-dir", str(raw), "--prepared-dir", str(tmp_path / "prepared"))
    assert done.returncode == 1 and "dvc repro split" in done.stderr
