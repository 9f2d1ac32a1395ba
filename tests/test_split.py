import hashlib
import os
import subprocess
import sys
import json

import numpy as np
import pytest
import torch

from lenet1.data.split import MNIST_MEAN, MNIST_STD, load_split, to_inputs
from lenet1.errors import InputError
from lenet1.data.inputs import prepare as make_inputs
from lenet1.data.split import class_quotas, first_digits, make_splits, stratified_indices, write_splits
from tests.helpers import ROOT, fake_mnist, run_stage, shared_dir, write_params


def digests(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_quotas_add_up_and_follow_class_sizes():
    labels = np.repeat(np.arange(10), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    quotas = class_quotas(labels, 10000)
    assert quotas.sum() == 10000
    expected = np.bincount(labels) * 10000 / len(labels)
    assert np.all(np.abs(quotas - expected) < 1)


def test_stratified_split_is_a_partition_with_class_proportions():
    labels = np.random.default_rng(1).integers(0, 10, 3000)
    train, val = stratified_indices(labels, 500, seed=7)
    assert len(val) == 500 and len(train) == 2500
    assert len(np.intersect1d(train, val)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(3000))
    share = np.bincount(labels[val], minlength=10) / np.bincount(labels, minlength=10)
    assert np.all(np.abs(share - 500 / 3000) < 0.01)


def test_seed_changes_the_split():
    labels = np.arange(1000) % 10
    assert not np.array_equal(stratified_indices(labels, 100, 0)[1], stratified_indices(labels, 100, 1)[1])


def test_split_files_are_byte_identical_across_runs(tmp_path):
    fake_mnist(tmp_path / "raw")
    for run in ("a", "b"):
        write_splits(make_splits(tmp_path / "raw", 100, seed=3), tmp_path / run)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    images, labels, kind = load_split(tmp_path / "a" / "val.pt")
    assert kind == "mnist28"
    assert images.shape == (100, 28, 28) and labels.tolist().count(0) == 10
    stats = json.loads((tmp_path / "a" / "stats.json").read_text())
    assert stats["train"]["size"] == 500 and stats["val"]["size"] == 100 and stats["test"]["size"] == 100
    assert sum(stats["val"]["class_counts"].values()) == 100


def test_bad_val_size_is_rejected():
    with pytest.raises(ValueError, match="val_size"):
        stratified_indices(np.arange(100) % 10, 100, 0)


@pytest.mark.parametrize("val_size", [-1, 60000, 2.5])
def test_split_stage_rejects_bad_params_before_writing(tmp_path, val_size):
    fake_mnist(tmp_path / "data" / "raw")
    write_params(tmp_path, split={"val_size": val_size})
    result = run_stage("split", tmp_path)
    assert result.returncode == 2
    assert "split.val_size" in result.stderr
    assert not (tmp_path / "data" / "prepared").exists()


def test_split_stage_rechecks_the_pinned_digests(tmp_path):
    # Outside DVC nothing else notices a raw file that changed after download (one flipped pixel here).
    fake_mnist(tmp_path / "data" / "raw")
    write_params(tmp_path, split={"val_size": 50})
    result = run_stage("split", tmp_path)
    assert result.returncode == 1
    assert "train-images-idx3-ubyte: SHA-256" in result.stderr and "dvc repro -f -s download" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "prepared").exists()


def test_split_writes_prepared_data(tmp_path):
    fake_mnist(tmp_path / "raw")
    write_splits(make_splits(tmp_path / "raw", 50, seed=0), tmp_path / "prepared")
    assert sorted(p.name for p in (tmp_path / "prepared").iterdir()) == ["stats.json", "test.pt", "train.pt", "val.pt"]


def test_corrupt_raw_file_is_a_clear_error(tmp_path):
    fake_mnist(tmp_path / "raw")
    labels = tmp_path / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-5])
    with pytest.raises(InputError, match="train-labels-idx1-ubyte: truncated"):
        make_splits(tmp_path / "raw", 50, seed=0)


def test_paper16_scales_the_bounding_box_into_16x16_centred_in_28x28():
    from lenet1.data.inputs import to_paper16

    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[2:10, 20:24] = 255  # an 8x4 box in a corner: scaled by 2 to 16x8
    out = to_paper16(digit)
    rows, cols = np.flatnonzero(out.any(1)), np.flatnonzero(out.any(0))
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (6, 21, 10, 17)  # 16 x 8, centred
    assert out[6:22, 10:18].min() > 0 and out.max() == 255
    values = to_inputs(torch.from_numpy(out)[None], "paper16")
    assert values.min() == -1.0 and values.max() == 1.0 and values[0, 0, 0, 0] == -1.0  # background -1


def test_paper16_is_written_and_read_back_as_such(tmp_path):
    fake_mnist(tmp_path / "raw")
    write_splits(make_splits(tmp_path / "raw", 50, seed=0, kind="paper16"), tmp_path / "prepared", "paper16")
    images, labels, kind = load_split(tmp_path / "prepared" / "test.pt")
    assert kind == "paper16" and images.shape[1:] == (28, 28)


def test_first_digits_takes_a_prefix_and_refuses_more_than_the_split_has():
    images, labels = torch.arange(50).view(5, 10), torch.arange(5)
    assert first_digits(images, labels, 0)[1].tolist() == [0, 1, 2, 3, 4]
    assert first_digits(images, labels, 3)[1].tolist() == [0, 1, 2] and first_digits(images, labels, 3)[0].shape == (
        3,
        10,
    )
    assert first_digits(images, labels, 5)[1].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(
        InputError, match=r"train.train_subset is 6, but the training split has 5 digits .*at most 5, or 0"
    ):
        first_digits(images, labels, 6)


def test_train_stage_refuses_a_subset_larger_than_the_split_before_writing(tmp_path):
    fake_mnist(tmp_path / "raw")
    write_splits(make_splits(tmp_path / "raw", 100, seed=0), tmp_path / "data" / "prepared")  # 500 training digits
    write_params(tmp_path, train={"train_subset": 501, "epochs": 1})
    result = run_stage("train", tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "train.train_subset is 501, but the training split has 500 digits" in result.stderr
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()


def doctor(path, change: str) -> None:
    data = torch.load(path)
    if change == "pixel":
        data["images"][0, 14, 14] ^= 1
    else:
        data["labels"][0] = (data["labels"][0] + 1) % 10
    torch.save(data, path)


def assert_refused(result, name: str) -> None:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert f"{name}.pt: SHA-256" in first and "the file changed since it was written" in first and "dvc repro" in first


@pytest.mark.parametrize("change", ["pixel", "label"])
def test_train_and_evaluate_refuse_a_prepared_file_changed_since_split(tmp_path, change):
    fake_mnist(tmp_path / "raw")
    prepared = tmp_path / "data" / "prepared"
    write_splits(make_splits(tmp_path / "raw", 100, seed=0), prepared)
    write_params(tmp_path, train={"epochs": 1})
    original = (prepared / "train.pt").read_bytes()
    doctor(prepared / "train.pt", change)
    assert_refused(run_stage("train", tmp_path), "train")
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()
    (prepared / "train.pt").write_bytes(original)
    assert run_stage("train", tmp_path).returncode == 0
    doctor(prepared / "test.pt", change)
    assert_refused(run_stage("evaluate", tmp_path), "test")
    assert (
        not (tmp_path / "metrics" / "test.json").exists() and not (tmp_path / "plots" / "test_predictions.csv").exists()
    )


def test_an_empty_split_is_named_not_a_traceback(tmp_path):
    fake_mnist(tmp_path / "raw")
    splits = make_splits(tmp_path / "raw", 100, seed=0)
    splits["test"] = (splits["test"][0][:0], splits["test"][1][:0])
    write_splits(splits, tmp_path / "data" / "prepared")
    write_params(tmp_path, train={"epochs": 1})
    assert run_stage("train", tmp_path).returncode == 0
    result = run_stage("evaluate", tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[0]
        .endswith("test.pt: holds no digits; rebuild it with `dvc repro -f -s split`")
    )


@pytest.mark.parametrize("kind", ["mnist28", "paper16"])
def test_inputs_are_the_written_arithmetic_on_a_copy(kind):
    images = torch.randint(0, 256, (37, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    expected = (
        (images.float() / 127.5 - 1.0) if kind == "paper16" else ((images.float() / 255.0 - MNIST_MEAN) / MNIST_STD)
    )
    assert torch.equal(to_inputs(images, kind), expected.unsqueeze(1))  # the same bits, in place or not
    floats = images.float()
    to_inputs(floats, kind)
    assert torch.equal(floats, images.float())  # the caller's tensor is left as it was


def test_no_validation_digits_trains_on_all_and_keeps_the_last_epoch(tmp_path):
    """split.val_size: 0, as the 1998 paper trained on all 60,000 digits: an empty val.pt, and train keeps the
    last epoch and says so in its log and metrics/train.json."""
    fake_mnist(tmp_path / "data" / "raw", train=300, test=50)
    write_params(tmp_path, split={"val_size": 0}, train={"epochs": 2})
    splits = make_splits(tmp_path / "data" / "raw", 0, seed=0)
    assert [len(labels) for _, labels in splits.values()] == [300, 0, 50]
    write_splits(splits, tmp_path / "data" / "prepared")
    result = run_stage("train", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no validation digits (split.val_size: 0): the model kept is the last epoch's" in result.stdout
    assert "no validation split: kept the last epoch, 2" in result.stdout
    metrics = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert metrics["best_epoch"] == 2 and metrics["selected"] == "last epoch" and "val_accuracy" not in metrics
    assert (tmp_path / "plots" / "train_history.csv").read_text().splitlines()[
        0
    ] == "epoch,lr,train_loss,train_accuracy"
    assert run_stage("evaluate", tmp_path).returncode == 0


PREPARE_HASHES = """
import gzip, hashlib, json, sys
from lenet1.data import idx
from lenet1.data.inputs import prepare
from lenet1.config.data import INPUTS
images = idx.read_images(gzip.decompress(open(sys.argv[1], "rb").read()))[:300]
print(json.dumps({kind: hashlib.sha256(prepare(images, kind).tobytes()).hexdigest() for kind in INPUTS}))
"""


@pytest.mark.slow
def test_every_input_reading_has_the_same_bytes_on_emulated_arm64():
    """Pillow's filters on 8-bit images: fixed-point sums, but Lanczos' weights come from libm's sin."""
    from tests.test_figures import ARM64, FIGURE_WHEELS  # the arm64 Python, with Pillow beside matplotlib

    if not (ARM64 / "python").exists() or not (FIGURE_WHEELS / "PIL").exists():
        message = f"the arm64 environment {ARM64} with Pillow in {FIGURE_WHEELS} (.ci/run installs both)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} is missing")
        pytest.skip(f"{message} is missing")
    digits = str(shared_dir() / "mnist-canonical" / "t10k-images-idx3-ubyte.gz")
    native = subprocess.run([sys.executable, "-c", PREPARE_HASHES, digits], cwd=ROOT, capture_output=True, text=True)
    arm64 = subprocess.run(
        [str(ARM64 / "python"), "-c", PREPARE_HASHES, digits],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{FIGURE_WHEELS}"},
        timeout=600,
    )
    assert native.returncode == 0 and arm64.returncode == 0, native.stderr + arm64.stderr
    assert json.loads(arm64.stdout) == json.loads(native.stdout)


def test_the_scaled_readings_keep_mnists_centre_of_mass_and_shrink_its_box():
    images = (np.random.default_rng(0).random((1, 28, 28)) > 2).astype(np.uint8)  # blank
    images[0, 4:24, 10:18] = 255  # a 20-row, 8-column stroke, centred at (13.5, 13.5) as MNIST centres by mass
    rows, cols = np.indices((28, 28))
    for kind in ("scaled16-area", "scaled16-bilinear", "scaled16-lanczos"):
        [digit] = make_inputs(images, kind)
        weights = digit.astype(np.float64)
        centre = ((rows * weights).sum() / weights.sum(), (cols * weights).sum() / weights.sum())
        assert np.allclose(centre, (13.5, 13.5), atol=0.5), (kind, centre)
        assert 15 <= np.flatnonzero((digit > 64).any(1)).size <= 17, kind  # the 20-pixel box becomes 16
    inputs = to_inputs(torch.from_numpy(make_inputs(images, "scaled16-area")), "scaled16-area")
    assert inputs.min() == -1.0 and inputs.max() <= 1.0  # in [-1, 1], paper as -1, as paper16
