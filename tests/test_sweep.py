"""A sweep over several machines, as .github/workflows/sweep.yml runs it, with a local bare repository as origin.

Two clones act as two runners: each runs one tiny experiment with .ci/sweep-run, which pushes it to origin
(`dvc exp push`).  A third clone runs .ci/sweep-summary, which pulls both (`dvc exp pull`) and summarises them.
Slow (three clones, two pipelines), so marked `slow`.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT
from tests.test_pipeline_e2e import ENV, sh

pytestmark = pytest.mark.slow
TINY = ["train.epochs=1", "train.train_subset=300"]


def test_the_workflow_runs_these_scripts():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "sweep.yml").read_text())
    steps = [step.get("run", "") for job in workflow["jobs"].values() for step in job.get("steps", [])]
    assert any('.ci/sweep-run "$SEED" $PARAMS' in run for run in steps)
    assert any('.ci/sweep-summary "$SWEEP_NAME-seed"' in run for run in steps)
    assert workflow["jobs"]["run"]["permissions"]["contents"] == "write"  # dvc exp push, in that job only


def test_two_machines_push_a_third_pulls_and_summarises(tmp_path):
    origin = tmp_path / "origin.git"
    sh(["git", "clone", "-q", "--bare", str(ROOT), str(origin)], cwd=tmp_path)
    env = {
        **ENV,
        "SWEEP_NAME": "sweep-test",
        "LENET1_THREADS": "1",
        "VIRTUAL_ENV": str(Path(ENV["PATH"].split(os.pathsep)[0]).parent),
    }
    for seed, machine in ((1, "runner-a"), (2, "runner-b")):
        sh(["git", "clone", "-q", str(origin), machine], cwd=tmp_path)
        # One cache for both runners, only to fetch and split MNIST once; each trains its own seed.
        sh(["dvc", "config", "--local", "cache.dir", str(tmp_path / "cache")], cwd=tmp_path / machine)
        done = subprocess.run(
            [str(tmp_path / machine / ".ci" / "sweep-run"), str(seed), *TINY],
            cwd=tmp_path / machine,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    refs = sh(["git", "for-each-ref", "refs/exps"], cwd=origin).stdout
    assert refs.count("sweep-test-seed") == 2, refs

    sh(["git", "clone", "-q", str(origin), "summary"], cwd=tmp_path)
    done = subprocess.run(
        [str(tmp_path / "summary" / ".ci" / "sweep-summary"), "sweep-test-seed", "out"],
        cwd=tmp_path / "summary",
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [group] = json.loads((tmp_path / "summary" / "out" / "summary.json").read_text())["groups"]
    assert group["n"] == 2 and group["params"] == {"train.epochs": 1, "train.train_subset": 300}
    assert sorted(run["seed_params"]["train.seed"] for run in group["runs"]) == [1, 2]
    assert all(run["platform"]["numerics"] == "exact" for run in group["runs"])
    assert "| train.epochs=1, train.train_subset=300 |" in (tmp_path / "summary" / "out" / "summary.md").read_text()
