"""Check that `dvc repro --force` on this checkout reproduces the dvc.lock committed at HEAD.

    python -m lenet1.tools.reproduce [--tolerance] [--accuracy-tolerance A] [--loss-tolerance L] [--report PATH]

The promise is bit for bit, deterministic mode, Linux x86-64 (Intel, AMD) or
arm64 with the pinned torch; elsewhere the check says so: use --tolerance.
The tree must be clean (the run rewrites dvc.lock and the outputs, and leaves
them for inspection: `git checkout dvc.lock metrics plots && dvc checkout`
restores HEAD's).  First, every file git holds that HEAD's dvc.lock records (the
`cache: false` metrics and plots, the code) must be what the lock says (`dvc status`):
a committed output edited by hand fails before anything runs.  Then every stage
reruns; the new dvc.lock is then compared with HEAD's entry by entry, and each changed stage entry (output, dependency,
param, command) is named.  With --tolerance, outputs of train and evaluate
may differ if they follow from a differing model (a stage whose inputs reproduced
must reproduce its outputs) and every metric `dvc metrics diff --json HEAD` reports is
close: accuracies and error rates within A (absolute, default 0.002), losses
within L (relative, default 0.05), error counts within A x the test samples,
anything else equal.  Data stages, code, params and commands always match
exactly.  The Markdown report adds `dvc metrics diff --md` and `dvc params diff --md`.
The download stage is rerun only where its outputs are neither in the workspace nor in DVC's cache (they are
checked by their hashes either way), so the check runs offline on a machine that has the data.
Exit status: 0 reproduced; 1 something differs or dvc failed; 2 the check cannot run (not a clean clone, or
data that must be fetched could not be).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from lenet1.pipeline import paths
from lenet1.pipeline.determinism import platform_note
from lenet1.outputs import write_atomic

TOLERANT_STAGES = ("train", "evaluate")
MODEL_OUTPUTS = ("models/lenet1.pt", "plots/train_history.csv")  # what follows from the model
NETWORK_STAGES = ("download",)  # stages that fetch their outputs: rerun only where DVC cannot restore them


class SetupError(Exception):
    """The check cannot run (exit 2)."""


def lock_entries(text: str) -> dict[tuple[str, str, str], object]:
    """Every recorded value of a dvc.lock: (stage, "cmd"|"out"|"dep"|"param", name) -> value."""
    entries: dict[tuple[str, str, str], object] = {}
    for stage, lock in (yaml.safe_load(text) or {}).get("stages", {}).items():
        entries[(stage, "cmd", "")] = lock.get("cmd")
        for kind in ("outs", "deps"):
            for item in lock.get(kind) or []:
                entries[(stage, kind[:-1], item["path"])] = item.get("md5")
        for file, values in (lock.get("params") or {}).items():
            entries.update({(stage, "param", f"{file}:{key}"): value for key, value in values.items()})
    return entries


def differences(committed: dict, reproduced: dict) -> list[tuple[str, str, str]]:
    return sorted(key for key in committed.keys() | reproduced.keys() if committed.get(key) != reproduced.get(key))


def tolerable(key: tuple[str, str, str], changed: list[tuple[str, str, str]]) -> bool:
    """Whether ``--tolerance`` may excuse this differing entry: only what follows from other arithmetic.

    Train's model is where arithmetic shows (its data, code and params must match); train's other outputs
    may differ only with the model, and evaluate's outputs only where one of its inputs
    (train's outputs) differs.  So a stage whose inputs reproduced exactly must reproduce its outputs
    too: a doctored metric or plot is never excused.
    """
    stage, kind, name = key
    if stage not in TOLERANT_STAGES or kind not in ("out", "dep"):
        return False
    if kind == "dep":
        return name in MODEL_OUTPUTS
    if stage == "train":
        return name == MODEL_OUTPUTS[0] or ("train", "out", MODEL_OUTPUTS[0]) in changed
    return any((stage, "dep", upstream) in changed for upstream in MODEL_OUTPUTS)


def metric_problems(diff: dict, accuracy: float, loss: float, samples: int) -> list[str]:
    """The metrics of ``dvc metrics diff --json`` that are not within their tolerance."""
    problems = []
    for path, metrics in diff.items():  # not metrics/platform.json: where it ran, which may differ
        for key, change in metrics.items() if path != str(paths.PLATFORM) else ():
            old, new = change.get("old"), change.get("new")
            name = key.rsplit(".", 1)[-1]  # DVC flattens nested metrics: per_class_accuracy.0
            if not all(isinstance(v, (int, float)) for v in (old, new)):
                ok = old == new
            elif "accuracy" in key or name == "error_rate":
                ok = abs(new - old) <= accuracy
            elif "loss" in name:
                ok = abs(new - old) <= loss * abs(old)
            elif name == "errors":
                ok = abs(new - old) <= accuracy * samples
            else:
                ok = old == new
            if not ok:
                problems.append(f"{path}: {key} {old} -> {new}")
    return problems


def dvc(*args: str, check: bool = True, status: bool = False) -> str | int:
    """DVC's output (or with ``status``, its exit status); with ``check``, a failure is a RuntimeError."""
    # The stages call `python`: make it this interpreter's (the venv's), activated or not.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True, env=env)
    if check and done.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.returncode if status else done.stdout


def committed_lock() -> str:
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], capture_output=True, text=True)
    if inside.returncode != 0:
        raise SetupError("not a git repository: run from a clone of the project")
    lock = subprocess.run(["git", "show", "HEAD:./dvc.lock"], capture_output=True, text=True)
    if lock.returncode != 0:
        raise SetupError("no dvc.lock committed at HEAD: nothing to reproduce")
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout
    if dirty.strip():
        raise SetupError(
            f"uncommitted changes (the run would overwrite them); commit or stash first:\n{dirty.rstrip()}"
        )
    return lock.stdout


def tracked_by_git(path: str) -> bool:
    done = subprocess.run(["git", "ls-files", "--error-unmatch", "--", path], capture_output=True, text=True)
    return done.returncode == 0


def committed_mismatches() -> list[str]:
    """The files git holds at HEAD whose content is not what HEAD's dvc.lock records, as "stage: path".

    ``dvc status`` compares the workspace with dvc.lock; the tree is clean, so for a file git tracks the
    workspace is HEAD.  What git does not hold (data, the model) is only missing on a fresh clone, and the
    rerun checks it.
    """
    try:
        status = json.loads(dvc("status", "--json") or "{}")
    except (RuntimeError, json.JSONDecodeError) as err:
        raise SetupError(f"dvc status failed, so the committed outputs cannot be checked: {err}") from err
    found = set()
    for stage, changes in status.items():
        for change in changes if isinstance(changes, list) else ():
            for kind in ("changed outs", "changed deps"):
                for path, state in (change.get(kind) or {}).items() if isinstance(change, dict) else ():
                    if state == "modified" and tracked_by_git(path):
                        found.add(f"{stage.split(':')[-1]}: {path}")
    return sorted(found)


def rerun(stages: list[str]) -> None:
    """``dvc repro --force``, except for a stage that fetches from the network (NETWORK_STAGES) whose outputs are
    what the lock records, in the workspace or DVC's cache: they were checked by their hashes, and the check then
    runs offline.  Where that stage must run and fails, the check cannot run: SetupError."""
    fetched = [stage for stage in stages if stage in NETWORK_STAGES]
    in_place = [stage for stage in fetched if not dvc("checkout", "--quiet", stage, check=False, status=True)]
    try:
        if in_place:
            dvc("repro", "--force", "--single-item", *[stage for stage in stages if stage not in in_place])
        else:
            dvc("repro", "--force")
    except RuntimeError as err:
        failed = [stage for stage in fetched if f"failed to reproduce '{stage}'" in str(err)]
        if failed:
            raise SetupError(
                f"the {failed[0]} stage could not fetch its data (offline?) and DVC's cache does not "
                f"hold it, so nothing could be reproduced; run where the network reaches:\n{err}"
            ) from None
        raise


def check(args: argparse.Namespace) -> tuple[int, str]:
    """Run the pipeline, compare, return the exit status and the Markdown report."""
    committed = lock_entries(committed_lock())
    note = platform_note()
    mismatched = committed_mismatches()
    if mismatched:
        named = "\n".join(f"- {item}" for item in mismatched)
        return 1, (
            f"**FAIL**: these committed files differ from what HEAD's dvc.lock records (edited by hand, or "
            f"committed without `dvc repro`):\n{named}"
        )
    try:
        rerun(list((yaml.safe_load(Path("dvc.yaml").read_text()) or {}).get("stages", {})))
    except RuntimeError as err:
        return 1, f"**FAIL**: {err}"
    changed = differences(committed, lock_entries(Path("dvc.lock").read_text()))
    metrics_diff = dvc("metrics", "diff", "--md", "HEAD", check=False)
    report = "\n\n".join(
        filter(None, [metrics_diff.strip(), dvc("params", "diff", "--md", "HEAD", check=False).strip()])
    )
    if not changed:
        return 0, f"**PASS**: every stage reproduced dvc.lock bit for bit.\n\n{report}"
    named = "\n".join(f"- {stage}: {kind} {name}".rstrip() for stage, kind, name in changed)
    if args.tolerance and all(tolerable(key, changed) for key in changed):
        samples = json.loads(paths.TEST_METRICS.read_text())["samples"] if paths.TEST_METRICS.exists() else 10000
        diff = json.loads(dvc("metrics", "diff", "--json", "HEAD", check=False) or "{}")
        problems = metric_problems(diff, args.accuracy_tolerance, args.loss_tolerance, samples)
        if not problems:
            return (
                0,
                f"**PASS within tolerance**: only model outputs differ, every metric is close:\n{named}\n\n{report}",
            )
        named += "\n" + "\n".join(f"- beyond tolerance: {p}" for p in problems)
    hint = f"\n\nNote: {note}; compare with `--tolerance`." if note else ""
    return 1, f"**FAIL**: these entries of dvc.lock differ from HEAD's:\n{named}{hint}\n\n{report}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet1.tools.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", action="store_true", help="accept model outputs whose metrics are close")
    parser.add_argument("--accuracy-tolerance", type=float, default=0.002, metavar="A")
    parser.add_argument("--loss-tolerance", type=float, default=0.05, metavar="L")
    parser.add_argument("--report", type=Path, metavar="PATH", help="also write the Markdown report to PATH")
    args = parser.parse_args(argv)
    try:
        status, report = check(args)
    except SetupError as err:
        print(f"reproduce: error: {err}", file=sys.stderr)
        return 2
    print(report)
    if args.report:
        write_atomic(args.report, (report + "\n").encode())
    return status


if __name__ == "__main__":
    sys.exit(main())
