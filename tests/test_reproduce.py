import copy
import os
import subprocess
import sys
from pathlib import Path

import yaml

from lenet1.reproduce import (
    DIFFERS,
    MATCH,
    TOLERATED,
    compare,
    main,
    metric_problems,
    metrics_files,
    parse_lock,
    render_report,
    summary,
)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: its python and dvc


def md5(char):
    return char * 32


# A cut-down dvc.lock of this project, as `dvc repro` writes it.
LOCK = {
    "schema": "2.0",
    "stages": {
        "validate": {"cmd": "python -m stages.validate",
                     "params": {"params.yaml": {"split": {"seed": 0}, "train": {"epochs": 20, "lr": 0.05}}}},
        "split": {
            "cmd": "python -m stages.split",
            "deps": [{"path": "data/raw", "hash": "md5", "md5": md5("a") + ".dir", "size": 9, "nfiles": 4}],
            "params": {"params.yaml": {"split": {"seed": 0}}},
            "outs": [{"path": "data/prepared", "hash": "md5", "md5": md5("b") + ".dir", "size": 9, "nfiles": 3}],
        },
        "train": {
            "cmd": "python -m stages.train",
            "deps": [{"path": "data/prepared/train.pt", "hash": "md5", "md5": md5("c"), "size": 5},
                     {"path": "stages/train.py", "hash": "md5", "md5": md5("d"), "size": 5}],
            "params": {"params.yaml": {"train": {"epochs": 20, "lr": 0.05}, "evaluate.batch_size": 1000}},
            "outs": [{"path": "metrics/train.json", "hash": "md5", "md5": md5("e"), "size": 5},
                     {"path": "models/lenet1.pt", "hash": "md5", "md5": md5("f"), "size": 5}],
        },
        "evaluate": {
            "cmd": "python -m stages.evaluate",
            "deps": [{"path": "models/lenet1.pt", "hash": "md5", "md5": md5("f"), "size": 5}],
            "outs": [{"path": "metrics/test.json", "hash": "md5", "md5": md5("1"), "size": 5}],
        },
    },
}
METRICS = {"metrics/train.json": {"val_accuracy": 0.98, "best_epoch": 12}, "metrics/test.json": {"accuracy": 0.9812}}


def entry(lock, stage, kind, path):
    return next(item for item in lock["stages"][stage][kind] if item["path"] == path)


def check(reproduced_lock, tolerate=False):
    findings = compare(parse_lock(yaml.safe_dump(LOCK, sort_keys=False)),
                       parse_lock(yaml.safe_dump(reproduced_lock, sort_keys=False)), tolerate)
    return findings, summary(findings, tolerance=0.01)


def failed(findings):
    return [f.label() for f in findings if f.status == DIFFERS]


def test_parse_lock_reads_outs_deps_and_flattened_params():
    stages = parse_lock(yaml.safe_dump(LOCK, sort_keys=False))
    assert list(stages) == ["validate", "split", "train", "evaluate"]
    assert stages["split"].outs == {"data/prepared": md5("b") + ".dir"}
    assert stages["train"].deps["stages/train.py"] == md5("d")
    assert stages["train"].params == {"train.epochs": 20, "train.lr": 0.05, "evaluate.batch_size": 1000}
    assert stages["validate"].params["split.seed"] == 0


def test_identical_locks_pass():
    findings, line = check(copy.deepcopy(LOCK))
    assert findings and all(f.status == MATCH for f in findings)
    assert line.startswith("PASS")


def test_tampered_model_md5_fails_naming_train_and_the_file():
    lock = copy.deepcopy(LOCK)
    entry(lock, "train", "outs", "models/lenet1.pt")["md5"] = md5("9")
    findings, line = check(lock)
    assert failed(findings) == ["train: models/lenet1.pt"]
    assert line.startswith("FAIL") and "train: models/lenet1.pt" in line
    report = render_report(findings, "", command="dvc repro --force")
    assert f"| train | out `models/lenet1.pt` | DIFFERS (committed md5 {md5('f')} vs reproduced md5 {md5('9')}) |" in report
    assert "| evaluate | out `metrics/test.json` | match |" in report
    assert report.rstrip().endswith(line)


def test_changed_param_fails_naming_stage_and_param():
    lock = copy.deepcopy(LOCK)
    lock["stages"]["train"]["params"]["params.yaml"]["train"]["epochs"] = 3
    findings, line = check(lock)
    assert failed(findings) == ["train: param train.epochs"]
    assert "train: param train.epochs" in line
    assert "DIFFERS (committed 20 vs reproduced 3)" in render_report(findings, "", command="dvc repro --force")


def test_param_type_change_is_a_difference():
    lock = copy.deepcopy(LOCK)
    lock["stages"]["split"]["params"]["params.yaml"]["split"]["seed"] = False  # 0 == False in Python
    assert failed(check(lock)[0]) == ["split: param split.seed"]


def test_missing_stage_names_its_outputs():
    lock = copy.deepcopy(LOCK)
    del lock["stages"]["evaluate"]
    assert failed(check(lock, tolerate=True)[0]) == [
        "evaluate: cmd", "evaluate: metrics/test.json", "evaluate: dep models/lenet1.pt"]


def test_data_stage_difference_fails_even_within_tolerance():
    lock = copy.deepcopy(LOCK)
    entry(lock, "split", "outs", "data/prepared")["md5"] = md5("7") + ".dir"
    entry(lock, "train", "deps", "data/prepared/train.pt")["md5"] = md5("8")
    findings, line = check(lock, tolerate=True)
    assert failed(findings) == ["split: data/prepared", "train: dep data/prepared/train.pt"]
    assert line.startswith("FAIL")


def test_code_dependency_difference_fails_even_within_tolerance():
    lock = copy.deepcopy(LOCK)
    entry(lock, "train", "deps", "stages/train.py")["md5"] = md5("8")
    assert failed(check(lock, tolerate=True)[0]) == ["train: dep stages/train.py"]


def model_changed_lock():
    """What another torch build gives: new model and metrics bytes, same data."""
    lock = copy.deepcopy(LOCK)
    for stage, kind, path in [("train", "outs", "models/lenet1.pt"), ("train", "outs", "metrics/train.json"),
                              ("evaluate", "deps", "models/lenet1.pt"), ("evaluate", "outs", "metrics/test.json")]:
        entry(lock, stage, kind, path)["md5"] = md5("0")
    return lock


def test_metric_difference_within_tolerance_passes_only_with_tolerance():
    reproduced_metrics = {"metrics/train.json": {"val_accuracy": 0.97, "best_epoch": 12},  # 0.01 away
                          "metrics/test.json": {"accuracy": 0.9805}}
    assert metric_problems(METRICS, reproduced_metrics, 0.01) == []

    findings, line = check(model_changed_lock(), tolerate=True)
    assert failed(findings) == []
    assert {f.label() for f in findings if f.status == TOLERATED} == {
        "train: models/lenet1.pt", "train: metrics/train.json", "evaluate: dep models/lenet1.pt", "evaluate: metrics/test.json"}
    assert line.startswith("PASS within tolerance 0.01") and "train: models/lenet1.pt" in line

    findings, line = check(model_changed_lock(), tolerate=False)  # no --tolerance
    assert "train: models/lenet1.pt" in failed(findings) and line.startswith("FAIL")


def test_metric_beyond_tolerance_or_changed_integer_is_a_problem():
    worse = {"metrics/train.json": {"val_accuracy": 0.95, "best_epoch": 13}, "metrics/test.json": {"accuracy": 0.9812}}
    problems = metric_problems(METRICS, worse, 0.01)
    assert len(problems) == 2
    assert "metrics/train.json: best_epoch HEAD 12 vs reproduced 13" in problems[0]
    assert "metrics/train.json: val_accuracy HEAD 0.98 vs reproduced 0.95" in problems[1]
    assert metric_problems(METRICS, worse, 1) == []


def test_missing_metrics_file_or_key_is_a_problem():
    assert metric_problems(METRICS, {"metrics/train.json": METRICS["metrics/train.json"]}, 1.0)
    assert metric_problems(METRICS, {**METRICS, "metrics/test.json": {"acc": 0.9812}}, 1.0)
    assert metric_problems(METRICS, {**METRICS, "metrics/test.json": None}, 1.0)


def test_metrics_files_come_from_the_stages_metrics_entries():
    text = """
stages:
  split: {cmd: python -m stages.split, outs: [data/prepared]}
  train:
    cmd: python -m stages.train
    outs: [models/lenet1.pt]
    metrics:
      - metrics/train.json:
          cache: false
  evaluate: {cmd: python -m stages.evaluate, metrics: [metrics/test.json]}
"""
    assert metrics_files(text) == ["metrics/train.json", "metrics/test.json"]


def test_dvc_failure_is_reported_and_fails():
    report = render_report([], "", command="dvc repro --force", error="`dvc repro --force` exited with status 255")
    assert report.startswith("## Reproducibility check: FAIL")
    assert report.rstrip().endswith("FAIL: `dvc repro --force` exited with status 255")


def test_not_a_git_repository_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--report", "report.md"]) == 2
    assert "not inside a git repository" in capsys.readouterr().err
    assert "not inside a git repository" in (tmp_path / "report.md").read_text()


def test_no_committed_lock_exits_2(tmp_path, monkeypatch, capsys):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    assert main([]) == 2
    assert "no dvc.lock committed at HEAD" in capsys.readouterr().err


# --- integration: a tiny real DVC pipeline in a temporary git repository ---

# The assert: stages must run with the interpreter that runs the tests (the venv, which has
# yaml here and torch in the real pipeline), not whatever `python` is first on PATH.
PREPARE = ("python -c \"import os, sys, yaml; assert sys.prefix == %r, sys.prefix; "
           "n = yaml.safe_load(open('params.yaml'))['prepare']['n']; os.makedirs('data', exist_ok=True); "
           "open('data/numbers.txt', 'w').write(' '.join(map(str, range(n))))\"" % sys.prefix)
# REPRO_NOISE stands for what dvc.lock does not track (another torch build, a random seed):
# it changes the model and shifts the metric.
TRAIN = ("python -c \"import json, os, yaml; scale = yaml.safe_load(open('params.yaml'))['train']['scale']; "
         "noise = float(os.environ.get('REPRO_NOISE', 0)); total = sum(map(int, open('data/numbers.txt').read().split())); "
         "os.makedirs('models', exist_ok=True); os.makedirs('metrics', exist_ok=True); "
         "open('models/lenet1.pt', 'w').write(str(total * scale + noise)); "
         "json.dump({'score': 0.5 + noise, 'epochs': 3}, open('metrics/train.json', 'w'))\"")


def test_reproduce_on_a_tiny_pipeline(tmp_path):
    # As in CI, the venv is not activated when lenet1.reproduce runs: its bin is not on PATH,
    # yet the stages' `python` must be the venv's (the one with yaml; torch in the real pipeline).
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != BIN)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PATH=path,
               GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com")
    env.pop("REPRO_NOISE", None)
    dvc = str(BIN / "dvc")

    def sh(*command):
        return subprocess.run(command, cwd=tmp_path, env=dict(env, PATH=f"{BIN}{os.pathsep}{path}"),
                              check=True, capture_output=True, text=True)

    def reproduce(*args, **extra):
        result = subprocess.run([sys.executable, "-m", "lenet1.reproduce", *args], cwd=tmp_path,
                                env=dict(env, **extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, timeout=120)  # one stream, in the order a person sees it
        return result.returncode, result.stdout

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"prepare": {"n": 5}, "train": {"scale": 2}}))
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "prepare": {"cmd": PREPARE, "params": ["prepare"], "outs": ["data/numbers.txt"]},
        "train": {"cmd": TRAIN, "deps": ["data/numbers.txt"], "params": ["train"],
                  "outs": ["models/lenet1.pt"], "metrics": [{"metrics/train.json": {"cache": False}}]},
    }}))
    sh("git", "init", "-q")
    sh(dvc, "init", "-q")
    sh(dvc, "config", "core.analytics", "false")
    sh(dvc, "repro")
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "pipeline")

    status, output = reproduce("--report", "report.md")
    assert status == 0, output
    assert "| train | out `models/lenet1.pt` | match |" in output
    assert (tmp_path / "report.md").read_text().rstrip().endswith("PASS: every stage reproduces HEAD's dvc.lock exactly")

    status, output = reproduce(REPRO_NOISE="0.001")
    assert status == 1, output
    assert "train: models/lenet1.pt" in output.splitlines()[-1]
    assert "| metrics/train.json | score" in output  # from dvc metrics diff

    status, output = reproduce("--tolerance", "0.01", REPRO_NOISE="0.001")
    assert status == 0, output
    assert "| train | out `models/lenet1.pt` | within tolerance" in output

    params = tmp_path / "params.yaml"
    params.write_text(params.read_text().replace("n: 5", "n: 6"))  # uncommitted
    status, output = reproduce("--tolerance", "0.01")
    assert status == 1, output
    last = output.splitlines()[-1]
    assert "prepare: param prepare.n" in last and "prepare: data/numbers.txt" in last

    status, output = reproduce(REPRO_NOISE="not a number")  # the train stage crashes
    assert status == 1, output
    assert output.splitlines()[-1] == "FAIL: `dvc repro --force` exited with status 255; nothing was compared"
