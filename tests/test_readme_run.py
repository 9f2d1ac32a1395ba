"""The README's cheap commands, run as pasted in a temporary clone: they do what the README says.

Slow (DVC starts in a subprocess for each), so marked `slow`.  Training commands are only queued, never run:
a queued sweep shows how many experiments the README's `-S` values make.
"""

import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, shared_dir
from tests.test_pipeline_e2e import ENV, sh
from tests.test_readme import COMMANDS

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    path = tmp_path_factory.mktemp("readme") / "clone"
    sh(["git", "clone", "-q", str(ROOT), str(path)], cwd=path.parent)
    return path


def run(words: list[str], cwd: Path) -> subprocess.CompletedProcess:
    words = [
        str(BIN / words[0]) if words[0] == "dvc" else sys.executable if words[0] == "python" else words[0],
        *words[1:],
    ]
    return sh(words, cwd)


def sweep_size(words: list[str]) -> int:
    """Experiments that one `dvc exp run --queue` makes: the product of its -S value counts (Hydra syntax)."""
    sizes = []
    for value in (words[i + 1].partition("=")[2] for i, w in enumerate(words) if w == "-S"):
        if found := re.fullmatch(r"range\((\d+),\s*(\d+)\)", value):
            sizes.append(int(found[2]) - int(found[1]))
        else:
            sizes.append(len(value.split(",")))
    return math.prod(sizes)


def queued(clone: Path) -> int:
    return len(re.findall(r"\bQueued$", run(["dvc", "queue", "status"], clone).stdout, re.M))


@pytest.mark.parametrize("words", [c for c in COMMANDS if c[:4] == ["dvc", "exp", "run", "--queue"]], ids=" ".join)
def test_a_queued_sweep_makes_the_experiments_it_says(clone, words):
    before = queued(clone)
    run(words, clone)
    try:
        assert queued(clone) - before == sweep_size(words)
    finally:
        run(["dvc", "queue", "remove", "--queued"], clone)


@pytest.mark.parametrize(
    "words", [c for c in COMMANDS if c[:3] in (["dvc", "params", "diff"], ["dvc", "metrics", "diff"])], ids=" ".join
)
def test_diff_commands_run(clone, words):
    run(words, clone)


def test_offline_download_then_two_tiny_experiments_in_exp_show(clone):
    # As the README says: files from a directory, then `dvc commit -f download` records the stage as done.
    [download] = [c for c in COMMANDS if c[:3] == ["python", "-m", "stages.download"]]
    [commit] = [c for c in COMMANDS if c[:3] == ["dvc", "commit", "-f"]]
    run(["dvc", "repro", "download"], clone)  # then take its files away, as on a machine without network
    by_hand = clone.parent / "by-hand"
    shutil.copytree(clone / "data" / "raw", by_hand)
    for path in shared_dir().glob("mnist-canonical/*.gz"):  # .gz as on the mirrors, where the test has them
        shutil.copy(path, by_hand)
        (by_hand / path.stem).unlink()
    shutil.rmtree(clone / "data" / "raw")
    run([w.replace("DIR", str(by_hand)) for w in download], clone)
    run(commit, clone)
    assert "up to date" in run(["dvc", "status", "download"], clone).stdout
    assert os.path.getsize(clone / "data" / "raw" / "t10k-labels-idx1-ubyte") == 10008
    tiny = ["-S", "train.epochs=1", "-S", "train.train_subset=300"]
    for extra in (["-S", "train.seed=1"], ["-S", "train.seed=2"], ["-S", "train.lr=0"]):  # the last one fails validate
        run(["dvc", "exp", "run", "--queue", *tiny, *extra], clone)
    run(["dvc", "queue", "start", "-j", "1"], clone)
    deadline = time.monotonic() + 600
    while re.search(r"\b(Queued|Running)\b", run(["dvc", "queue", "status"], clone).stdout):
        assert time.monotonic() < deadline, "the queue did not finish in 10 minutes"
        time.sleep(2)
    shows = [c for c in COMMANDS if c[:3] == ["dvc", "exp", "show"]]
    assert shows
    for words in shows:  # each documented `exp show` keeps the State column: failed runs show the baseline's metrics
        shown = subprocess.run(
            [str(BIN / "dvc"), *words[1:]],
            cwd=clone,
            env={**ENV, "COLUMNS": "120"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        lines = shown.splitlines()
        header = [cell.strip() for cell in next(line for line in lines if "Experiment" in line).strip("| ").split("|")]
        assert header[:4] == ["Experiment", "State", "accuracy", "errors"] and "train.seed" in header, shown
        assert sum("├──" in line or "└──" in line for line in lines) == 3, shown
        assert sum(" Success " in line for line in lines) == 2 and sum(" Failed " in line for line in lines) == 1, shown
