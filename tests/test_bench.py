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
    done = run_bench(
        "--raw-dir",
        str(raw),
        "--images",
        "96",
        "--repeats",
        "1",
        "--batch-sizes",
        "16,32",
        "--threads",
        "1",
        "--no-time-to-accuracy",
        "--json",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    for row in results["loops"]:
        # Same digits, same order, same steps: a data path that fed other images or another order would differ here.
        assert row["ours"]["loss"] == row["standard"]["loss"], row
        assert row["ours"]["images_per_s"] > 0 and row["standard"]["images_per_s"] > 0
    cases = [(row["variant"], row["loss"], row["batch_size"]) for row in results["modes"]]
    assert cases == [(v, loss, b) for v in ("full", "paper") for loss in ("cross_entropy", "mse") for b in (16, 32)]
    for row in results["modes"]:
        # The exact engine and stock PyTorch train the same network: losses agree closely but not bit for bit.
        assert abs(row["exact"]["loss"] - row["fast"]["loss"]) < 1e-3, row
    assert "ours/standard" in done.stdout and "exact/stock" in done.stdout


def test_bench_says_which_stage_makes_missing_data(tmp_path):
    done = run_bench("--raw-dir", str(tmp_path / "raw"))
    assert done.returncode == 1 and "dvc repro download" in done.stderr


def time_to_accuracy_module():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import time_to_accuracy
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return time_to_accuracy


def test_time_to_accuracy_counts_training_seconds_until_the_first_epoch_at_the_target():
    from tests.test_train import tiny_split, train_params

    bench = time_to_accuracy_module()
    train, test = tiny_split(64, 0), tiny_split(32, 1)
    reached = bench.train_until(train_params(epochs=3), 1, train, test, target=0.0)
    assert [row["epoch"] for row in reached["epochs"]] == [1, 2, 3]
    assert reached["epoch_at_target"] == 1 and reached["seconds_to_target"] == reached["epochs"][0]["seconds"]
    assert reached["seconds"] == reached["epochs"][-1]["seconds"] >= reached["seconds_to_target"]
    never = bench.train_until(train_params(epochs=2), 1, train, test, target=1.01)
    assert never["seconds_to_target"] is None and never["epoch_at_target"] is None
    report = {"target": 1.01, "runs": [{"config": "tiny", **never}, {"config": "tiny", **reached}]}
    assert "| not reached | - |" in bench.table(report)
    # One of the two seeds reached it: its seconds alone, with no interval; the totals have one.
    row = bench.summary(report).splitlines()[2]
    assert row.startswith(f"| tiny | 1 of 2 | {reached['seconds_to_target']:.1f} | ") and row.count("[") == 2, row
    assert "| tiny | 0 of 1 | - | " in bench.summary({"target": 1.01, "runs": [{"config": "tiny", **never}]})
    assert "seeds reaching" not in bench.table(report)  # one seed: no summary
    two_seeds = {"target": 1.01, "runs": [{"config": "tiny", **never}, {"config": "tiny", **never, "seed": 2}]}
    assert bench.table(two_seeds).endswith(bench.summary(two_seeds))


def test_time_to_accuracy_says_which_stage_makes_missing_data(tmp_path, monkeypatch):
    bench = time_to_accuracy_module()
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    assert "run `dvc repro split` first" in bench.missing_data()


def test_train_steps_profile_lists_the_top_operations():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "train_steps.py"), "--profile", "--top", "3", "4", "2", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert (
        "ATen calls per step" in lines[0] and len(lines) == 4 and all(line.startswith("aten::") for line in lines[1:])
    )


def test_train_steps_runs_from_this_checkout_or_another(tmp_path):
    script = ROOT / "bench" / "train_steps.py"
    for extra in ([], ["--repo", str(ROOT)], ["--variant", "paper", "--loss", "mse"], ["--engine", "stock"]):
        done = subprocess.run(
            [sys.executable, str(script), *extra, "4", "2", "1"], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    missing = subprocess.run(
        [sys.executable, str(script), "--repo", str(tmp_path), "4", "2", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode != 0 and "lenet1" in missing.stderr


def test_bad_lists_and_thread_counts_are_usage_errors_before_any_work(tmp_path):
    import os

    for options, says in [
        (["--seeds", "abc"], "'abc': expected comma-separated whole numbers"),
        (["--batch-sizes", "16,64,"], "'16,64,': expected comma-separated whole numbers"),
        (["--batch-sizes", "0"], "each value must be at least 1"),
        (["--threads", "0"], "--threads must be >= 1"),
    ]:
        done = run_bench("--raw-dir", str(tmp_path / "raw"), *options)
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, (options, done.stderr)
    env = dict(os.environ, LENET1_THREADS="0")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--no-time-to-accuracy"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 2 and "LENET1_THREADS='0'" in done.stderr and "Traceback" not in done.stderr
    assert time_to_accuracy_module().int_list("3,1,2") == [3, 1, 2]


def test_a_config_equal_to_an_earlier_one_is_trained_once_and_compared_through_it():
    bench = time_to_accuracy_module()
    configs, same_as = bench.distinct({"default": 1, "default, fast": 2, "old default": 1, "old default, fast": 2})
    assert configs == {"default": 1, "default, fast": 2} and same_as == {
        "old default": "default",
        "old default, fast": "default, fast",
    }
    runs = [
        {"config": "default", "seed": 1, "seconds": 10.0, "seconds_to_target": 8.0},
        {"config": "default, fast", "seed": 1, "seconds": 40.0, "seconds_to_target": 30.0},
        {"config": "default", "seed": 2, "seconds": 10.0, "seconds_to_target": None},
        {"config": "default, fast", "seed": 2, "seconds": 40.0, "seconds_to_target": 34.0},
    ]
    lines = bench.speedups({"target": 0.989, "runs": runs, "same_as": same_as}).splitlines()
    assert lines[2:] == [
        "| default, fast | 4.00x | 3.75x (1 seeds) |",
        "| old default, fast (= default, fast) | 4.00x | 3.75x (1 seeds) |",
    ]


def test_the_roofline_flop_count_is_what_torch_counts_for_the_layer_shapes():
    # torch's own FLOP counter on forward and backward of one image (the image needs no gradient, as in the engine).
    import importlib.util

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from lenet1.model import build_model

    spec = importlib.util.spec_from_file_location("roofline", ROOT / "bench" / "roofline.py")
    roofline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(roofline)
    model = build_model("full", 1)
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, 28, 28)).sum().backward()
    ours = roofline.flops_per_image("full")
    assert ours["forward"] + ours["backward"] == counter.get_total_flops() == 702_720  # issue 24's 351k multiply-adds
    assert ours["update"] == 2 * sum(p.numel() for p in model.parameters())
    paper = roofline.flops_per_image("paper")  # Table 1's 20 H3 kernels instead of 48 (torch computes them dense)
    assert ours["forward"] - paper["forward"] == 2 * (48 - 20) * 64 * 25
    assert paper["update"] == 2 * 2578
