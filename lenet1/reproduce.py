"""Check that `dvc repro` on this checkout reproduces what is committed.

    python -m lenet1.reproduce [--pull] [--tolerance X] [--report PATH]

Run it from the project root (where dvc.yaml is) of a clean clone; CI does.

1. Read the dvc.lock committed at HEAD (``git show HEAD:./dvc.lock``) before
   anything runs: the run rewrites the working dvc.lock.
2. Run ``dvc repro --force``: every stage reruns (``--force`` also bypasses
   DVC's run cache), so every hash in the new dvc.lock was computed here.
   With ``--pull``: ``dvc pull`` (the committed outputs from the DVC remote),
   then plain ``dvc repro``, which reruns only the stages whose command, code,
   params or inputs differ from the committed lock.  Quicker, but it proves
   less: a stage that is not rerun matches trivially.
3. Compare the new dvc.lock with the committed one, stage by stage: the md5 of
   every output (metrics and plots included; a directory's md5 ends in
   ``.dir``) and of every dependency, every recorded param value, the command.
4. Print a Markdown report (also written to ``--report PATH``) with one row per
   output, a row per differing dependency / param, the output of
   ``dvc metrics diff --md HEAD``, and a last summary line naming every
   differing stage and file.

``--tolerance X`` (absolute, X >= 0) is for machines whose torch build gives
slightly different floats.  The metrics are within tolerance when every
metrics file of dvc.yaml (the stages' ``metrics:``) has the same keys at HEAD
(``git show HEAD:<file>``) and in the reproduced workspace, every number in it
differs by at most X, and every other value (string, bool, null) is equal.
Then, and only then, differences in
  * the outputs of the stages train, evaluate and plot (TOLERANT_STAGES), and
  * dependencies that are outputs of those stages (e.g. evaluate's model)
are reported as "within tolerance" and do not fail the check.  Everything else
must match exactly even with --tolerance: the outputs of every other stage
(download and split: the data), code dependencies, params and commands.  An
output that is missing on one side is never within tolerance.

Exit status: 0 everything matches (or differs only within tolerance); 1 some
output, dependency, param or command differs, or dvc failed; 2 the check
cannot run (not a git repository, no dvc.lock committed at HEAD, no dvc).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

LOCK = "dvc.lock"
# Stages whose outputs are numerical results of the model, so a different
# torch build may change their bytes.  Any other stage must reproduce exactly.
TOLERANT_STAGES = frozenset({"train", "evaluate", "plot"})
MATCH, DIFFERS, TOLERATED = "match", "DIFFERS", "within tolerance"


class SetupError(Exception):
    """The check cannot run at all (exit 2)."""


class _Absent:
    """Marks an entry that one of the two locks does not have (a param may legitimately be null)."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class StageLock:
    """What dvc.lock records for one stage."""

    cmd: Any
    outs: dict[str, str | None]  # path -> md5
    deps: dict[str, str | None]  # path -> md5
    params: dict[str, Any]  # "train.epochs" (or "other.yaml:key") -> value


@dataclass(frozen=True)
class Finding:
    """One compared entry of one stage: kind is "cmd", "out", "dep" or "param"."""

    stage: str
    kind: str
    name: str
    committed: Any
    reproduced: Any
    status: str

    def label(self) -> str:
        """How the summary line names this entry, e.g. ``train: models/lenet1.pt``."""
        if self.kind == "out":
            return f"{self.stage}: {self.name}"
        return f"{self.stage}: {self.kind}" + ("" if self.kind == "cmd" else f" {self.name}")


def _flatten(value: Any, prefix: str = "", lists: bool = False) -> dict[str, Any]:
    """Nested mappings (and lists, if ``lists``) as one mapping of dotted keys to leaf values."""
    if isinstance(value, dict) and value:
        items = value.items()
    elif lists and isinstance(value, list) and value:
        items = enumerate(value)
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items:
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key), lists))
    return flat


def parse_lock(text: str) -> dict[str, StageLock]:
    """The stages of a dvc.lock (schema 2.0) text, in file order."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        raise ValueError("not a dvc.lock: it has no 'stages' mapping")
    stages = {}
    for name, stage in data["stages"].items():
        params: dict[str, Any] = {}
        for file, values in (stage.get("params") or {}).items():
            # Name params as in params.yaml; only other files get a "file:" prefix.
            prefix = "" if file == "params.yaml" else f"{file}:"
            params.update({prefix + key: value for key, value in _flatten(values).items()})
        stages[name] = StageLock(
            cmd=stage.get("cmd"),
            outs={entry["path"]: entry.get("md5") for entry in stage.get("outs") or []},
            deps={entry["path"]: entry.get("md5") for entry in stage.get("deps") or []},
            params=params,
        )
    return stages


def metrics_files(dvc_yaml_text: str) -> list[str]:
    """The metrics files the stages of a dvc.yaml declare (``metrics:`` entries)."""
    files = []
    for stage in (yaml.safe_load(dvc_yaml_text) or {}).get("stages", {}).values():
        for entry in stage.get("metrics") or []:
            files.extend([entry] if isinstance(entry, str) else entry)  # "path" or {path: options}
    return files


def _within(a: float, b: float, tolerance: float) -> bool:
    # isclose: 0.98 - 0.97 is 0.010000000000000009 in binary floats, yet within 0.01.
    return abs(a - b) <= tolerance or math.isclose(abs(a - b), tolerance, rel_tol=1e-9)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_problems(committed: dict[str, Any], reproduced: dict[str, Any], tolerance: float) -> list[str]:
    """Why the metrics are not within ``tolerance`` of each other; empty when they are.

    Both map a metrics file path to its parsed JSON, or None when the file is
    missing or unreadable.
    """
    problems = []
    for path in sorted(committed.keys() | reproduced.keys()):
        old, new = committed.get(path), reproduced.get(path)
        if old is None or new is None:
            problems.append(f"{path}: missing or unreadable {'at HEAD' if old is None else 'in the workspace'}")
            continue
        old, new = _flatten(old, lists=True), _flatten(new, lists=True)
        for key in sorted(old.keys() | new.keys()):
            if key not in old or key not in new:
                problems.append(f"{path}: {key} only {'at HEAD' if key in old else 'in the workspace'}")
            elif _is_number(old[key]) and _is_number(new[key]):
                if not _within(old[key], new[key], tolerance):
                    problems.append(f"{path}: {key} HEAD {old[key]} vs reproduced {new[key]} "
                                    f"(differs by {abs(old[key] - new[key]):.6g} > {tolerance:g})")
            elif old[key] != new[key]:
                problems.append(f"{path}: {key} HEAD {old[key]!r} vs reproduced {new[key]!r}")
    return problems


def _same(a: Any, b: Any) -> bool:
    # The type check keeps `1` -> `true` or `1` -> `1.0` in params.yaml from passing as equal.
    return type(a) is type(b) and a == b


def compare(committed: dict[str, StageLock], reproduced: dict[str, StageLock], tolerate: bool = False) -> list[Finding]:
    """Every cmd, out, dep and param of every stage of both locks, each with its status.

    ``tolerate``: the metrics are within tolerance (see ``metric_problems``), so
    differing outputs of TOLERANT_STAGES, and deps that are such outputs, are
    TOLERATED rather than DIFFERS.
    """
    tolerant_outs = [path for name, stage in committed.items() if name in TOLERANT_STAGES for path in stage.outs]

    def tolerable(stage: str, kind: str, name: str) -> bool:
        if kind == "out":
            return stage in TOLERANT_STAGES
        # A dep inside a tolerant output directory counts too.
        return kind == "dep" and any(name == out or name.startswith(out + "/") for out in tolerant_outs)

    missing = StageLock(cmd=ABSENT, outs={}, deps={}, params={})
    findings = []
    for stage in list(committed) + [name for name in reproduced if name not in committed]:
        old, new = committed.get(stage, missing), reproduced.get(stage, missing)
        for kind, old_items, new_items in (
            ("cmd", {"cmd": old.cmd}, {"cmd": new.cmd}),
            ("out", old.outs, new.outs),
            ("dep", old.deps, new.deps),
            ("param", old.params, new.params),
        ):
            for name in list(old_items) + [name for name in new_items if name not in old_items]:
                a, b = old_items.get(name, ABSENT), new_items.get(name, ABSENT)
                if _same(a, b):
                    status = MATCH
                elif tolerate and a is not ABSENT and b is not ABSENT and tolerable(stage, kind, name):
                    status = TOLERATED
                else:
                    status = DIFFERS
                findings.append(Finding(stage, kind, name, a, b, status))
    return findings


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if value is ABSENT else json.dumps(value)
    return text.replace("|", "\\|").replace("\n", " ")  # keep the Markdown table intact


def summary(findings: list[Finding], error: str | None = None, tolerance: float | None = None) -> str:
    """The last line of the report: PASS or FAIL, naming each differing stage and file."""
    if error:
        return f"FAIL: {error}"
    failed = [f.label() for f in findings if f.status == DIFFERS]
    if failed:
        return f"FAIL: {len(failed)} difference(s) from HEAD's dvc.lock: " + "; ".join(failed)
    tolerated = [f.label() for f in findings if f.status == TOLERATED]
    if tolerated:
        return f"PASS within tolerance {tolerance:g}: " + "; ".join(tolerated)
    return "PASS: every stage reproduces HEAD's dvc.lock exactly"


def render_report(
    findings: list[Finding],
    metrics_diff: str,
    *,
    command: str,
    error: str | None = None,
    tolerance: float | None = None,
    problems: list[str] | None = None,
) -> str:
    """The Markdown report: result table, tolerance verdict, metrics diff, summary line."""
    last = summary(findings, error, tolerance)
    lines = [f"## Reproducibility check: {last.split(':')[0]}", "", f"Ran `{command}`."]
    if findings:
        lines += ["", "| stage | entry | result |", "|---|---|---|"]
        for stage in dict.fromkeys(f.stage for f in findings):
            own = [f for f in findings if f.stage == stage]
            for f in own:
                if f.kind == "out" or f.status != MATCH:
                    result = f.status
                    if f.status != MATCH:
                        md5 = "md5 " if f.kind in ("out", "dep") else ""
                        result += f" (committed {md5}{_show(f.committed)} vs reproduced {md5}{_show(f.reproduced)})"
                    what = "cmd" if f.kind == "cmd" else f"{f.kind} `{_show(f.name)}`"
                    lines.append(f"| {stage} | {what} | {result} |")
            # Matching deps and params are only counted: listing them all would bury the outputs.
            same = {kind: sum(f.kind == kind and f.status == MATCH for f in own) for kind in ("cmd", "dep", "param")}
            if any(same.values()):
                what = ", ".join(filter(None, ["cmd" if same["cmd"] else "",
                                               f"deps ({same['dep']})" if same["dep"] else "",
                                               f"params ({same['param']})" if same["param"] else ""]))
                lines.append(f"| {stage} | {what} | match |")
    if tolerance is not None and not error:
        lines += ["", f"### Tolerance {tolerance:g} (metrics at HEAD vs reproduced)", ""]
        if problems:
            lines += ["Not within tolerance, so every difference counts:", ""] + [f"- {p}" for p in problems]
        else:
            lines.append(f"Every metric is within {tolerance:g} of HEAD's.")
    if not error:
        lines += ["", "### Metrics against HEAD (`dvc metrics diff --md HEAD`)", "", metrics_diff.strip()]
    return "\n".join(lines + ["", last]) + "\n"


def committed_text(path: str) -> str | None:
    """``path`` (relative to the current directory) as committed at HEAD; None if HEAD has no such file."""
    result = subprocess.run(["git", "show", f"HEAD:./{path}"], capture_output=True, text=True, encoding="utf-8")
    return result.stdout if result.returncode == 0 else None


def _load_json(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None


def find_dvc() -> str:
    """The dvc beside this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    if beside.exists():
        return str(beside)
    found = shutil.which("dvc")
    if not found:
        raise SetupError("no dvc executable beside the interpreter or on PATH; install requirements.txt")
    return found


def _committed_lock() -> dict[str, StageLock]:
    try:
        inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], capture_output=True).returncode == 0
    except FileNotFoundError:
        raise SetupError("git is not installed") from None
    if not inside:
        raise SetupError("not inside a git repository; run this in a clone of the project")
    if not Path("dvc.yaml").is_file():
        raise SetupError("no dvc.yaml here; run this from the DVC project root")
    text = committed_text(LOCK)
    if text is None:
        raise SetupError(f"no {LOCK} committed at HEAD here: nothing to compare with (run `dvc repro` and commit {LOCK})")
    try:
        return parse_lock(text)
    except (ValueError, yaml.YAMLError) as err:
        raise SetupError(f"{LOCK} at HEAD cannot be read: {err}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lenet1.reproduce",
        description="Rerun the DVC pipeline and check it reproduces the committed dvc.lock (see the module docstring).",
    )
    parser.add_argument("--pull", action="store_true",
                        help="`dvc pull`, then `dvc repro` (reruns only stale stages) instead of `dvc repro --force`")
    parser.add_argument("--tolerance", type=float, metavar="X",
                        help="accept train/evaluate/plot outputs that differ if every metric is within X (absolute) of HEAD's")
    parser.add_argument("--report", type=Path, metavar="PATH", help="also write the Markdown report to PATH")
    args = parser.parse_args(argv)
    if args.tolerance is not None and not args.tolerance >= 0:  # `not >=` also rejects nan
        parser.error("--tolerance must be a number >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the check; return the exit status (0 pass, 1 differs or dvc failed, 2 cannot check)."""
    args = parse_args(argv)
    try:
        committed = _committed_lock()  # read before dvc rewrites dvc.lock
        dvc = find_dvc()
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        if args.report:  # so a CI job summary says why there is no comparison
            args.report.write_text(f"## Reproducibility check: ERROR\n\n{err}\n", encoding="utf-8")
        return 2
    # The stages' commands say `python`: make that this interpreter's environment
    # (the venv with torch) even when the venv is not activated, as in CI.
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    runs = [[dvc, "pull"], [dvc, "repro"]] if args.pull else [[dvc, "repro", "--force"]]
    command = " && ".join(" ".join(["dvc"] + run[1:]) for run in runs)

    error = None
    for run in runs:
        print(f"$ {' '.join(run)}", flush=True)
        status = subprocess.run(run, env=env).returncode  # not captured: dvc's progress streams to the user
        if status != 0:
            error = f"`{' '.join(['dvc'] + run[1:])}` exited with status {status}; nothing was compared"
            break

    findings: list[Finding] = []
    problems: list[str] = []
    metrics_diff = ""
    if error is None:
        try:
            reproduced = parse_lock(Path(LOCK).read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError) as err:
            error = f"the reproduced {LOCK} cannot be read: {err}"
    if error is None:
        if args.tolerance is not None:
            files = metrics_files(Path("dvc.yaml").read_text(encoding="utf-8"))
            problems = metric_problems(
                {path: _load_json(committed_text(path)) for path in files},
                {path: _load_json(Path(path).read_text(encoding="utf-8")) if Path(path).is_file() else None
                 for path in files},
                args.tolerance,
            )
        findings = compare(committed, reproduced, tolerate=args.tolerance is not None and not problems)
        diff = subprocess.run([dvc, "metrics", "diff", "--md", "HEAD"], capture_output=True, text=True, env=env)
        if diff.returncode != 0:
            metrics_diff = f"(`dvc metrics diff` failed with status {diff.returncode}: {diff.stderr.strip()})"
        elif len([line for line in diff.stdout.splitlines() if line.strip()]) <= 2:  # a table header only
            metrics_diff = "No metric differs from HEAD."
        else:
            metrics_diff = diff.stdout

    report = render_report(findings, metrics_diff, command=command, error=error,
                           tolerance=args.tolerance, problems=problems)
    print("\n" + report, end="", flush=True)
    if args.report:
        args.report.write_text(report, encoding="utf-8")
    return 1 if error or any(f.status == DIFFERS for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
