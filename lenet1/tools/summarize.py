"""Summarise seed sweeps: experiments grouped by their params minus the seeds, with the uncertainty.

    python -m lenet1.tools.summarize                    # the experiments based on HEAD
    python -m lenet1.tools.summarize --all              # every commit's; groups never mix commits
    python -m lenet1.tools.summarize --prefix sweep-    # only experiments whose name starts so
    python -m lenet1.tools.summarize --md               # a Markdown table, for a PR or the README
    python -m lenet1.tools.summarize --json results/current.json --md-out results/current.md
    python -m lenet1.tools.summarize --history results/seeds.json   # add to every commit's groups (and seeds.md)
    python -m lenet1.tools.summarize --all --compare train.variant=paper@121e024 default@121e024 \
        --compare-out results/paper_vs_default.json

Reads ``dvc exp show --json``.  Per group: n, mean, sample std and 95% Student-t interval of the test
accuracy, min/max and mean errors; a group of one run has no interval.  Failed, queued and running
experiments are listed, never counted.  Runs pool across machines only inside the bit-exact promise
(``metrics/platform.json``); a run outside it pools only with runs of the same platform and threads.
``--compare A B`` pairs two groups' runs by seed: a paired t-test, and McNemar's exact test per pair
(printed as JSON, and written to ``--compare-out``).
Exit status: 0 done, 1 nothing to summarise, an unknown group, or a dvc or git command that failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lenet1.pipeline import paths
from lenet1.tools.compare import SummaryError, compare, run_tool
from lenet1.outputs import write_atomic
from lenet1.tools.stats import describe

SEED_KEYS = ("train.seed", "split.seed")


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def _file_data(data: dict, kind: str, path: str) -> dict:
    return ((data or {}).get(kind) or {}).get(path, {}).get("data") or {}


def collect(show: list[dict]) -> tuple[list[dict], list[dict]]:
    """Finished experiments and those that did not finish.

    Baseline commits themselves are not counted: their committed metrics may
    come from other code than the commit's own (a stale lock), an experiment's never do.
    """
    runs, unfinished = [], []
    for baseline in show:
        if baseline["rev"] == "workspace" or not baseline.get("data"):
            continue
        base_params = flatten(_file_data(baseline["data"], "params", str(paths.PARAMS)))
        rows = []
        for group in baseline.get("experiments") or []:
            state = (group.get("executor") or {}).get("state", "success")
            rows += [(rev, rev.get("name") or group.get("name") or rev["rev"][:7], state) for rev in group["revs"]]
        for state_row, name, state in rows:
            metrics = _file_data(state_row.get("data"), "metrics", str(paths.TEST_METRICS))
            if state != "success" or state_row.get("error") or "accuracy" not in metrics:
                unfinished.append({"experiment": name, "commit": baseline["rev"], "state": state})
                continue
            params = flatten(_file_data(state_row["data"], "params", str(paths.PARAMS)))
            runs.append(
                {
                    "experiment": name,
                    "rev": state_row["rev"],
                    "commit": baseline["rev"],
                    "params": {k: v for k, v in params.items() if k not in SEED_KEYS and base_params.get(k) != v},
                    "seed_params": {k: params[k] for k in SEED_KEYS if k in params},
                    "accuracy": metrics["accuracy"],
                    "errors": metrics["errors"],
                    "train_accuracy": _file_data(state_row["data"], "metrics", str(paths.TRAIN_METRICS)).get(
                        "train_accuracy"
                    ),
                    "platform": _file_data(state_row["data"], "metrics", str(paths.PLATFORM)) or None,
                }
            )
    return _unique(runs), unfinished


def _unique(runs: list[dict]) -> list[dict]:
    """One run per commit, params, seeds and pooling platform: the same experiment run twice counts once."""
    seen, unique = set(), []
    for run in runs:
        key = (
            run["commit"],
            json.dumps(run["params"], sort_keys=True),
            json.dumps(run["seed_params"], sort_keys=True),
            platform_label(run["platform"]),
        )
        if key not in seen:
            seen.add(key)
            unique.append(run)
    return unique


def group_name(params: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(params.items())) or "default"


def platform_label(platform: dict | None) -> str:
    """ "" for a run inside the promise (or with no record); else its platform, which keeps it in a group of its own."""
    if not platform or platform.get("bit_exact_promise") == "covered":
        return ""
    keys = ("numerics", "system", "machine", "cpu_vendor", "cpu_model", "torch", "threads")  # all a fast run depends on
    return f" [{', '.join(str(platform.get(k, '?')) for k in keys)}]"


def summarise(runs: list[dict]) -> list[dict]:
    """Groups of runs with equal commit, non-seed params and pooling platform, with their statistics."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        name = group_name(run["params"]) + platform_label(run["platform"])
        groups.setdefault((run["commit"], name), []).append(run)
    summary = []
    for (commit, name), members in groups.items():
        members.sort(key=lambda run: json.dumps(run["seed_params"], sort_keys=True))
        accuracy = describe([run["accuracy"] for run in members])
        trained = [run["train_accuracy"] for run in members if run.get("train_accuracy") is not None]
        summary.append(
            {
                "name": name,
                "commit": commit,
                "params": members[0]["params"],
                **accuracy,
                "mean_errors": sum(run["errors"] for run in members) / len(members),
                "mean_train_accuracy": sum(trained) / len(trained) if trained else None,
                "runs": [
                    {
                        k: run[k]
                        for k in ("experiment", "rev", "commit", "seed_params", "accuracy", "errors", "platform")
                    }
                    for run in members
                ],
            }
        )
    return summary


def markdown(groups: list[dict]) -> str:
    lines = [
        "| group | commit | n | mean test accuracy | std | 95% CI | min – max | mean errors | mean training accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in groups:
        std = f"{g['std']:.2%}" if g["std"] is not None else "–"
        ci = f"[{g['ci95'][0]:.2%}, {g['ci95'][1]:.2%}]" if g["ci95"] else "– (n = 1)"
        trained = f"{g['mean_train_accuracy']:.2%}" if g.get("mean_train_accuracy") is not None else "–"
        lines.append(
            f"| {g['name']} | {g['commit'][:7]} | {g['n']} | {g['mean']:.2%} | {std} | {ci} | "
            f"{g['min']:.2%} – {g['max']:.2%} | {g['mean_errors']:.1f} | {trained} |"
        )
    return "\n".join(lines)


def with_history(groups: list[dict], path: Path) -> list[dict]:
    """The groups recorded in the JSON file at ``path`` (if any), with ``groups`` replacing those of the same
    commit and name: the history of every commit's sweeps, which no single checkout's experiments hold."""
    old = json.loads(path.read_text())["groups"] if path.exists() else []
    new = {(g["commit"], g["name"]) for g in groups}
    kept = [g for g in old if (g["commit"], g["name"]) not in new]
    for g in kept:  # min, max and mean errors from the runs, for files written before they were recorded
        accuracies = [run["accuracy"] for run in g["runs"]]
        g.update(
            min=min(accuracies),
            max=max(accuracies),
            mean_errors=sum(run["errors"] for run in g["runs"]) / len(g["runs"]),
        )
    return groups + kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet1.tools.summarize", description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="experiments of every commit (dvc exp show -A)")
    parser.add_argument("--prefix", default="", help="only experiments whose name starts with this")
    parser.add_argument("--md", action="store_true", help="print a Markdown table")
    parser.add_argument("--json", metavar="PATH", help="write the groups as JSON to PATH (- for stdout)")
    parser.add_argument("--md-out", metavar="PATH", help="write the Markdown table to PATH")
    parser.add_argument("--compare", nargs=2, metavar=("GROUP_A", "GROUP_B"), help="paired tests between two groups")
    parser.add_argument("--compare-out", metavar="PATH", help="also write --compare's JSON to PATH")
    parser.add_argument(
        "--history",
        metavar="PATH",
        type=Path,
        help="add the groups to the JSON history at PATH (replacing the same commit's) and write "
        "its Markdown table beside it (PATH with .md)",
    )
    args = parser.parse_args(argv)
    if args.compare_out and not args.compare:
        parser.error("--compare-out needs --compare GROUP_A GROUP_B")
    try:
        show = json.loads(
            run_tool(
                [sys.executable, "-m", "dvc", "exp", "show", "--json", *(["-A"] if args.all else [])], "dvc exp show"
            )
        )
        runs, unfinished = collect(show)
        for item in unfinished:  # first, so that they are listed even when nothing finished
            print(f"not counted: {item['experiment']} ({item['state']}, commit {item['commit'][:7]})", file=sys.stderr)
        runs = [run for run in runs if run["experiment"].startswith(args.prefix)]
        if not runs:
            raise SummaryError(
                "no finished experiments to summarise; run some, e.g. "
                "`dvc exp run --queue -S 'train.seed=range(1,6)'` then `dvc queue start`"
            )
        groups = summarise(runs)
        print(table := markdown(groups))
        runs_out = ("experiment", "commit", "seed_params", "accuracy", "errors", "platform")
        fields = ("name", "commit", "params", "n", "mean", "std", "ci95", "min", "max", "mean_errors")
        recorded = [
            {**{k: g[k] for k in fields}, "runs": [{k: run[k] for k in runs_out} for run in g["runs"]]} for g in groups
        ]
        if args.json:
            text = json.dumps({"groups": recorded}, indent=2) + "\n"
            sys.stdout.write(text) if args.json == "-" else write_atomic(args.json, text.encode())
        if args.history:
            history = with_history(recorded, args.history)
            write_atomic(args.history, (json.dumps({"groups": history}, indent=2) + "\n").encode())
            write_atomic(args.history.with_suffix(".md"), (markdown(history) + "\n").encode())
        if args.md_out:
            write_atomic(args.md_out, (table + "\n").encode())
        if args.compare:
            text = json.dumps(compare(groups, *args.compare), indent=2) + "\n"
            print(text, end="")
            if args.compare_out:
                write_atomic(args.compare_out, text.encode())
    except SummaryError as err:
        print(f"summarize: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
