"""Bad inputs end in one clear line and a non-zero exit; bugs keep their traceback; nothing half-written stays."""

import os
import signal
import subprocess
import sys
import time

import pytest

from lenet1.outputs import write_atomic, write_json
from lenet1.config.params import ParamsError, read_params, validate
from stages.validate import SECTIONS
from stages.runner import run
from lenet1.data.split import make_splits, write_splits
from tests.helpers import ROOT, fake_mnist, run_stage, write_params


def test_a_bug_keeps_its_traceback():
    def buggy():
        raise ValueError("deep inside torch")

    with pytest.raises(ValueError, match="deep inside torch"):
        run(buggy, "train")


def test_a_stage_finishes_with_its_status_and_all_it_printed():
    script = (
        "from stages.runner import finish; print('out', end=''); "
        "print('err', end='', file=__import__('sys').stderr); finish(3)"
    )
    buffered = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}  # as a user runs DVC
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=buffered, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "out", "err")  # through pipes: buffered, then flushed


def test_a_failed_local_write_names_the_file_and_stops(tmp_path, capsys):
    target = tmp_path / "metrics"
    target.mkdir()
    target.chmod(0o500)
    try:
        if os.access(target, os.W_OK):
            pytest.skip("running as a user who can write to read-only directories")
        status = run(lambda: write_json(target / "train.json", {"a": 1}), "train")
    finally:
        target.chmod(0o700)
    assert status == 1
    assert f"train: error: cannot read or write {target}" in capsys.readouterr().err
    assert list(target.iterdir()) == []


def test_write_atomic_removes_what_a_killed_run_left(tmp_path):
    stale = tmp_path / ".train.json.0123456789ab.tmp"
    stale.write_text("half")
    other = tmp_path / ".test.json.0123456789ab.tmp"
    other.write_text("another file's")
    write_atomic(tmp_path / "train.json", b"{}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".test.json.0123456789ab.tmp", "train.json"]


def test_a_section_given_twice_is_an_error(tmp_path):
    path = write_params(tmp_path)
    path.write_text(path.read_text() + "split:\n  val_size: 5000\n  seed: 0\n")
    with pytest.raises(ParamsError, match="key 'split' appears twice"):
        validate(read_params(path), SECTIONS)


@pytest.mark.parametrize(
    "key, value", [("seed", 2**70), ("lr", float("inf")), ("epochs", 10**9), ("batch_size", 10**6)]
)
def test_numbers_beyond_their_bounds_name_the_key(tmp_path, key, value):
    write_params(tmp_path, train={key: value})
    result = run_stage("train", tmp_path)
    assert result.returncode == 2
    assert f"bad value for 'train.{key}'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()


def test_an_output_directory_that_is_a_file_names_the_path(tmp_path, capsys):
    (tmp_path / "metrics").write_text("not a directory")
    status = run(lambda: write_json(tmp_path / "metrics" / "train.json", {"a": 1}), "train")
    assert status == 1
    err = capsys.readouterr().err
    assert f"train: error: cannot read or write {tmp_path / 'metrics'}" in err and "Traceback" not in err


def test_a_full_disk_names_the_output_not_the_temporary_file(tmp_path, monkeypatch, capsys):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    status = run(lambda: write_json(tmp_path / "train.json", {"a": 1}), "train")
    assert status == 1
    assert (
        f"train: error: cannot read or write {tmp_path / 'train.json'}: No space left on device"
        in capsys.readouterr().err
    )
    assert list(tmp_path.iterdir()) == []  # no temporary file left


def one_line_failure(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert all(word in line for word in words), line
    return line


@pytest.mark.parametrize("threads", ["2147483648", "20000", str(4 * os.cpu_count() + 1)])
def test_too_many_threads_is_one_line_before_any_work(threads):
    done = subprocess.run(
        [sys.executable, "-m", "stages.evaluate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LENET1_THREADS": threads},
    )
    one_line_failure(done, f"LENET1_THREADS='{threads}'", f"from 1 to {4 * os.cpu_count()}")


def test_a_python_without_the_venv_is_one_line_naming_it(tmp_path):
    """dvc.yaml's `python` outside the venv: a Python without the pinned packages, as the README warns."""
    subprocess.run(
        [sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True
    )
    bare = str(tmp_path / "bare" / "bin" / "python")
    done = subprocess.run(
        [bare, "-m", "stages.train"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
    )
    one_line_failure(done, "stages: error:", bare, "torch", ". .venv/bin/activate")


def test_a_training_subset_larger_than_the_training_split_stops_validate(tmp_path):
    write_params(tmp_path, train={"train_subset": 55000}, split={"val_size": 10000})
    done = run_stage("validate", tmp_path)
    assert done.returncode == 2 and "train.train_subset is 55000, more than the 50000" in done.stderr, done.stderr
    assert not (tmp_path / "data" / "params.ok").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_a_long_epoch_at_once_in_one_line(tmp_path, signum):
    """An epoch at batch 1 runs in one C call; the signal stops it before its next step, not at its end."""
    fake_mnist(tmp_path / "raw", train=40100, test=10)
    write_splits(make_splits(tmp_path / "raw", 100, seed=0), tmp_path / "data" / "prepared")
    write_params(tmp_path, train={"epochs": 1, "batch_size": 1})
    stage = subprocess.Popen(
        [sys.executable, "-m", "stages.train"],
        cwd=tmp_path,
        start_new_session=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert stage.stdout.readline().startswith("train: LeNet-1"), stage.stderr.read()  # the epoch's call begins
        time.sleep(0.5)
        os.killpg(stage.pid, signum)  # the whole process group, as a terminal's Ctrl-C
        out, err = stage.communicate(timeout=60)
    finally:
        if stage.poll() is None:
            os.killpg(stage.pid, signal.SIGKILL)
    assert stage.returncode == 128 + signum and "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("engine: ")]  # a first compile's
    assert lines == [
        f"train: interrupted by {signal.Signals(signum).name}: its temporary files "
        "are removed and nothing half-written is left"
    ]
    assert "epoch   1/1" not in out  # stopped inside the epoch, not after it
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()
