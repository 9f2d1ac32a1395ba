import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from lenet1.tools.reproduce import differences, lock_entries, main, metric_problems, tolerable

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: its python and dvc

LOCK = """schema: '2.0'
stages:
  split:
    cmd: python -m stages.split
    deps: [{path: data/raw, md5: aaa.dir}]
    params: {params.yaml: {split: {seed: 0}}}
    outs: [{path: data/prepared, md5: bbb.dir}]
  train:
    cmd: python -m stages.train
    deps: [{path: data/prepared/train.pt, md5: ccc}, {path: stages/train.py, md5: ddd}]
    params: {params.yaml: {train: {epochs: 8, lr: 0.5}}}
    outs: [{path: models/lenet1.pt, md5: eee}, {path: metrics/train.json, md5: fff}]
  evaluate:
    cmd: python -m stages.evaluate
    deps: [{path: models/lenet1.pt, md5: eee}]
    outs: [{path: metrics/test.json, md5: ggg}]
"""


def changed(old: str, new: str) -> list:
    return differences(lock_entries(LOCK), lock_entries(LOCK.replace(old, new)))


def test_identical_locks_have_no_differences():
    assert differences(lock_entries(LOCK), lock_entries(LOCK)) == []


def test_a_changed_model_names_train_and_evaluate_and_is_tolerable():
    diff = changed("eee", "EEE")
    assert diff == [("evaluate", "dep", "models/lenet1.pt"), ("train", "out", "models/lenet1.pt")]
    assert all(tolerable(key, diff) for key in diff)
    with_metrics = changed("eee", "EEE") + changed("ggg", "GGG")  # the model and, following it, the test metrics
    assert all(tolerable(key, with_metrics) for key in with_metrics)


def test_data_code_params_and_commands_are_never_tolerable():
    for old, new in (("bbb.dir", "xxx.dir"), ("ddd", "xxx"), ("lr: 0.5", "lr: 0.4"), ("stages.train", "stages.other")):
        diff = changed(old, new)
        assert diff and not any(tolerable(key, diff) for key in diff), (old, diff)
    assert changed("lr: 0.5", "lr: 0.4") == [("train", "param", "params.yaml:train")]


def test_a_doctored_metric_is_never_tolerable_where_its_inputs_reproduced():
    # The model reproduced (eee) but a committed metric was edited: evaluate's or train's inputs match,
    # so must its outputs.
    for old, new, entry in (
        ("ggg", "GGG", ("evaluate", "out", "metrics/test.json")),
        ("fff", "FFF", ("train", "out", "metrics/train.json")),
    ):
        diff = changed(old, new)
        assert diff == [entry] and not tolerable(entry, diff)


def test_tolerances_are_per_metric():
    close = {
        "metrics/test.json": {
            "accuracy": {"old": 0.9891, "new": 0.9889},
            "errors": {"old": 109, "new": 111},
            "per_class_accuracy.0": {"old": 0.99, "new": 0.991},
            "loss": {"old": 0.0341, "new": 0.0349},
        },
        "metrics/platform.json": {"cpu_vendor": {"old": "GenuineIntel", "new": "AuthenticAMD"}},
    }
    assert metric_problems(close, accuracy=0.002, loss=0.05, samples=10000) == []  # where it ran may differ
    far = {
        "metrics/test.json": {
            "accuracy": {"old": 0.9891, "new": 0.9791},
            "errors": {"old": 109, "new": 209},
            "loss": {"old": 0.0341, "new": 0.05},
            "samples": {"old": 10000, "new": 9999},
        }
    }
    problems = metric_problems(far, accuracy=0.002, loss=0.05, samples=10000)
    assert [p.split(": ")[1].split()[0] for p in problems] == ["accuracy", "errors", "loss", "samples"]


def test_not_a_git_repository_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([]) == 2
    assert "not a git repository" in capsys.readouterr().err


# --- integration: a tiny real DVC pipeline in a temporary git repository ---

PREPARE = (
    f'python -c "import os, sys, yaml; assert sys.prefix == {sys.prefix!r}, sys.prefix; '
    "n = yaml.safe_load(open('params.yaml'))['prepare']['n']; os.makedirs('data', exist_ok=True); "
    "open('data/numbers.txt', 'w').write(' '.join(map(str, range(n))))\""
)
# REPRO_NOISE stands for what dvc.lock does not track (another platform's floats): it changes the model and the metric.
TRAIN = (
    "python -c \"import json, os, yaml; scale = yaml.safe_load(open('params.yaml'))['train']['scale']; "
    "noise = float(os.environ.get('REPRO_NOISE', 0)); total = sum(map(int, open('data/numbers.txt').read().split())); "
    "os.makedirs('models', exist_ok=True); os.makedirs('metrics', exist_ok=True); "
    "open('models/lenet1.pt', 'w').write(str(total * scale + noise)); "
    "json.dump({'accuracy': 0.98 + noise, 'epochs': 3}, open('metrics/train.json', 'w'))\""
)


EVALUATE = (
    "python -c \"import os; os.makedirs('plots', exist_ok=True); "
    "open('plots/curve.csv', 'w').write('x\\n' + open('models/lenet1.pt').read() + '\\n')\""
)


def committed_pipeline(folder: Path, sh, stages: dict) -> None:
    """A git repository in ``folder`` holding a DVC pipeline of ``stages``, reproduced and committed."""
    (folder / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    sh("git", "init", "-q")
    sh(str(BIN / "dvc"), "init", "-q")
    sh(str(BIN / "dvc"), "repro")
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "pipeline")


def test_reproduce_on_a_tiny_pipeline(tmp_path):
    # As in CI, the venv is not activated: the stages' `python` must still be the venv's.
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != BIN)
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        PATH=path,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    env.pop("REPRO_NOISE", None)

    def sh(*command):
        return subprocess.run(
            command,
            cwd=tmp_path,
            env=dict(env, PATH=f"{BIN}{os.pathsep}{path}"),
            check=True,
            capture_output=True,
            text=True,
        )

    def reproduce(*args, **extra):
        result = subprocess.run(
            [sys.executable, "-m", "lenet1.tools.reproduce", *args],
            cwd=tmp_path,
            env=dict(env, **extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )
        sh("git", "checkout", "-q", "--", ".")  # the run leaves its outputs: back to HEAD's
        return result.returncode, result.stdout

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"prepare": {"n": 5}, "train": {"scale": 2}}))
    committed_pipeline(
        tmp_path,
        sh,
        {
            "prepare": {"cmd": PREPARE, "params": ["prepare"], "outs": ["data/numbers.txt"]},
            "train": {
                "cmd": TRAIN,
                "deps": ["data/numbers.txt"],
                "params": ["train"],
                "outs": ["models/lenet1.pt"],
                "metrics": [{"metrics/train.json": {"cache": False}}],
            },
            "evaluate": {
                "cmd": EVALUATE,
                "deps": ["models/lenet1.pt"],
                "outs": [{"plots/curve.csv": {"cache": False}}],
            },
        },
    )

    status, output = reproduce("--report", "report.md")
    assert status == 0 and "**PASS**: every stage reproduced dvc.lock bit for bit" in output, output
    assert (tmp_path / "report.md").read_text().startswith("**PASS**")

    status, output = reproduce(REPRO_NOISE="0.001")  # a tampered output
    assert status == 1 and "- train: out models/lenet1.pt" in output, output
    assert "| metrics/train.json | accuracy" in output  # dvc metrics diff --md

    status, output = reproduce("--tolerance", REPRO_NOISE="0.001")
    assert status == 0 and "**PASS within tolerance**" in output, output

    status, output = reproduce("--tolerance", REPRO_NOISE="0.01")  # a metric outside tolerance
    assert status == 1 and "beyond tolerance: metrics/train.json: accuracy 0.98 -> 0.99" in output, output

    # A doctored metric, then a doctored plot, committed with their hashes in dvc.lock: the model reproduces, so
    # the stages that made them had the same inputs and must give the same outputs, in both modes.
    for doctored, stage, text in (
        ("metrics/train.json", "train", '{"accuracy": 0.99, "epochs": 3}'),
        ("plots/curve.csv", "evaluate", "x\n10.5\n"),
    ):
        (tmp_path / doctored).write_text(text)
        sh(str(BIN / "dvc"), "commit", "-f", stage)
        sh("git", "commit", "-qam", f"doctored {doctored}")
        for mode in ((), ("--tolerance",)):
            status, output = reproduce(*mode)
            assert status == 1 and f"- {stage}: out {doctored}" in output and "**FAIL**" in output, (mode, output)
        sh("git", "reset", "-q", "--hard", "HEAD~1")

    # A committed output edited by hand, dvc.lock left alone: HEAD's lock no longer describes HEAD's files.
    for faked, stage in (("metrics/train.json", "train"), ("plots/curve.csv", "evaluate")):
        (tmp_path / faked).write_text('{"accuracy": 0.9994, "epochs": 3}' if faked.endswith(".json") else "x\n1\n")
        sh("git", "commit", "-qam", f"faked {faked}")
        for mode in ((), ("--tolerance",)):
            status, output = reproduce(*mode)
            assert status == 1 and f"- {stage}: {faked}" in output and "**FAIL**" in output, (mode, output)
            assert "dvc.lock records" in output, output
        sh("git", "reset", "-q", "--hard", "HEAD~1")

    params = tmp_path / "params.yaml"
    params.write_text(params.read_text().replace("n: 5", "n: 6"))
    status, output = reproduce()
    assert status == 2 and "uncommitted changes" in output, output
    params.write_text(params.read_text().replace("n: 5", "n: 6"))
    sh("git", "commit", "-qam", "a param changed without rerunning the pipeline")
    status, output = reproduce("--tolerance")  # a changed param
    assert (
        status == 1 and "- prepare: param params.yaml:prepare" in output and "- prepare: out data/numbers.txt" in output
    )

    status, output = reproduce(REPRO_NOISE="not a number")  # the train stage crashes
    assert status == 1 and "**FAIL**: dvc repro --force failed" in output, output


# A download stage that fails as an unreachable network does (OFFLINE set), and a stage after it.
DOWNLOAD = (
    "python -c \"import os, sys; os.environ.get('OFFLINE') and sys.exit('network unreachable'); "
    "os.makedirs('data/raw', exist_ok=True); open('data/raw/digits.txt', 'w').write('1 2 3')\""
)
COUNT = (
    "python -c \"import os; os.makedirs('metrics', exist_ok=True); "
    "open('metrics/count.json', 'w').write(str(len(open('data/raw/digits.txt').read().split())))\""
)


def test_offline_the_check_runs_on_data_in_place_and_otherwise_cannot_run(tmp_path):
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != BIN)
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        PATH=f"{BIN}{os.pathsep}{path}",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )

    def sh(*command):
        return subprocess.run(command, cwd=tmp_path, env=env, check=True, capture_output=True, text=True)

    def reproduce():
        result = subprocess.run(
            [sys.executable, "-m", "lenet1.tools.reproduce"],
            cwd=tmp_path,
            env=dict(env, OFFLINE="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )
        return result.returncode, result.stdout

    committed_pipeline(
        tmp_path,
        sh,
        {
            "download": {"cmd": DOWNLOAD, "outs": ["data/raw"]},
            "count": {"cmd": COUNT, "deps": ["data/raw"], "outs": [{"metrics/count.json": {"cache": False}}]},
        },
    )

    status, output = reproduce()  # the data are in place: checked by their hash, not fetched again
    assert status == 0 and "**PASS**" in output, output
    assert (tmp_path / "data" / "raw" / "digits.txt").read_text() == "1 2 3"  # not deleted on the way

    shutil.rmtree(tmp_path / "data" / "raw")
    status, output = reproduce()  # not in the workspace, but in DVC's cache: restored, still offline
    assert status == 0 and "**PASS**" in output, output

    shutil.rmtree(tmp_path / "data" / "raw")
    shutil.rmtree(tmp_path / ".dvc" / "cache")
    status, output = reproduce()  # nowhere: the check cannot run, which is not "does not reproduce"
    assert status == 2 and "could not fetch its data (offline?)" in output and "**FAIL**" not in output, output
