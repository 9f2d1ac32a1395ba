"""Two seed-sweep groups compared run by run: a paired t-test over their shared seeds, and McNemar's exact
test on the per-digit predictions of each seed pair (read from each experiment's committed predictions CSV)."""

from __future__ import annotations

import csv
import io
import json
import subprocess

from lenet1.pipeline import paths
from lenet1.tools.stats import mcnemar


class SummaryError(Exception):
    """Nothing to summarise, a group that does not exist, or a dvc or git command that failed."""


def run_tool(command: list[str], what: str) -> str:
    """The stdout of ``command``; a ``SummaryError`` saying why ``what`` failed."""
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError as err:
        raise SummaryError(f"{what}: cannot run {command[0]} ({err.strerror})") from None
    if done.returncode != 0:
        raise SummaryError(f"{what} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def predictions_correct(rev: str) -> list[bool]:
    """Per test digit, whether the run at ``rev`` got it right (its committed predictions CSV)."""
    text = run_tool(
        ["git", "show", f"{rev}:{paths.PREDICTIONS}"], f"reading {paths.PREDICTIONS} of experiment {rev[:7]}"
    )
    return [row["actual"] == row["predicted"] for row in csv.DictReader(io.StringIO(text))]


def compare(groups: list[dict], first: str, second: str) -> dict:
    """Paired t-test over shared seeds and McNemar's exact test per seed pair."""
    from scipy import stats

    chosen = []
    for name in (first, second):  # NAME, or NAME@COMMIT where groups of several commits share a name
        label, _, commit = name.partition("@")
        matches = [g for g in groups if g["name"] == label and g["commit"].startswith(commit)]
        if len(matches) != 1:
            raise SummaryError(
                f"group {name!r}: {len(matches)} matches (groups: {', '.join(g['name'] for g in groups)})"
            )
        chosen.append({json.dumps(r["seed_params"], sort_keys=True): r for r in matches[0]["runs"]})
    seeds = sorted(set(chosen[0]) & set(chosen[1]))
    if not seeds:
        raise SummaryError(f"groups {first!r} and {second!r} share no seeds to pair")
    pairs = [(chosen[0][s], chosen[1][s]) for s in seeds]
    result = {
        "first": first,
        "second": second,
        "seeds": [json.loads(s) for s in seeds],
        "mean_difference": sum(a["accuracy"] - b["accuracy"] for a, b in pairs) / len(pairs),
        "mcnemar": [mcnemar(predictions_correct(a["rev"]), predictions_correct(b["rev"])) for a, b in pairs],
    }
    if len(pairs) > 1:
        result["paired_t_p_value"] = float(
            stats.ttest_rel([a["accuracy"] for a, _ in pairs], [b["accuracy"] for _, b in pairs]).pvalue
        )
    return result
