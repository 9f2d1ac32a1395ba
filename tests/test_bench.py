"""bench/train_speed.py end to end on tiny generated data: a check of what it compares, not a timing."""
import json
import subprocess
import sys

from tests.helpers import ROOT, fake_mnist

SCRIPT = ROOT / "bench" / "train_speed.py"


def run_bench(*options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *options], capture_output=True, text=True, timeout=300)


def test_both_loops_train_the_same_model_on_the_same_images_to_the_same_loss(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "speed.json"
    fake_mnist(raw, train=600, test=100)
    done = run_bench("--raw-dir", str(raw), "--images", "96", "--repeats", "1", "--batch-sizes", "16,32",
                     "--threads", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    for row in results["loops"]:
        # Same digits, same order, same steps: a data path that fed other images or another order would differ here.
        assert row["ours"]["loss"] == row["standard"]["loss"], row
        assert row["ours"]["images_per_s"] > 0 and row["standard"]["images_per_s"] > 0
    assert [row["batch_size"] for row in results["modes"]] == [16, 32]
    for row in results["modes"]:
        # Exact and stock arithmetic train the same network: losses agree closely but not bit for bit.
        assert abs(row["exact"]["loss"] - row["fast"]["loss"]) < 1e-3, row
    assert "ours/standard" in done.stdout and "exact cost" in done.stdout


def test_bench_says_which_stage_makes_missing_data(tmp_path):
    done = run_bench("--raw-dir", str(tmp_path / "raw"))
    assert done.returncode == 1 and "dvc repro download" in done.stderr
