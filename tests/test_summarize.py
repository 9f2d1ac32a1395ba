import json
import math

import pytest
from scipy import stats as scipy_stats

from lenet1.tools.stats import describe, mcnemar
from lenet1.tools.summarize import collect, markdown, summarise
from tests.helpers import ROOT


def state(rev, params, accuracy=None, errors=None, name=None, platform=None):
    metrics = {"metrics/test.json": {"data": {"accuracy": accuracy, "errors": errors}}} if accuracy is not None else {}
    if platform:
        metrics["metrics/platform.json"] = {"data": platform}
    return {"rev": rev, "name": name, "data": {"params": {"params.yaml": {"data": params}}, "metrics": metrics}}


def params(seed=1, variant="full"):
    return {"train": {"seed": seed, "variant": variant, "lr": 0.5}}


def show(experiments, extra_baselines=()):
    head = state("a" * 40, params(), 0.99, 100, "main")
    head["experiments"] = experiments
    return [state("workspace", params(), 0.99, 100), head, *extra_baselines]


def exp(rev, name, accuracy, errors, executor="success", platform=None, **kw):
    return {
        "revs": [state(rev, params(**kw), accuracy, errors, name, platform)],
        "executor": {"state": executor},
        "name": name,
    }


def platform(vendor, numerics="exact", covered=True):
    return {
        "system": "Linux",
        "machine": "x86_64",
        "cpu_vendor": vendor,
        "cpu_model": "Xeon",
        "threads": "1",
        "torch": "2.14.1",
        "numerics": numerics,
        "bit_exact_promise": "covered" if covered else "not covered",
    }


def test_describe_matches_the_textbook_formulas():
    values = [0.9891, 0.9903, 0.9887, 0.9910, 0.9895]
    d = describe(values)
    mean = sum(values) / 5
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 4)
    half = scipy_stats.t.ppf(0.975, 4) * std / math.sqrt(5)
    assert d["n"] == 5 and d["mean"] == pytest.approx(mean) and d["std"] == pytest.approx(std)
    assert d["ci95"] == pytest.approx([mean - half, mean + half])
    assert half == pytest.approx(2.776 * std / math.sqrt(5), rel=1e-3)  # t(0.975, 4) = 2.776


def test_one_run_has_no_interval():
    assert describe([0.98])["std"] is None and describe([0.98])["ci95"] is None


def test_mcnemar_counts_only_discordant_digits():
    first = [True] * 90 + [True] * 8 + [False] * 2
    second = [True] * 90 + [False] * 8 + [True] * 2
    result = mcnemar(first, second)
    assert (result["only_first_right"], result["only_second_right"]) == (8, 2)
    assert result["p_value"] == pytest.approx(0.109375)  # 2 * P(X <= 2), X ~ Binomial(10, 1/2)
    assert mcnemar(first, first)["p_value"] == 1.0


def test_groups_exclude_seeds_skip_failures_and_keep_commits_apart():
    other_commit = state("b" * 40, params(), 0.97, 300, "old")
    other_commit["experiments"] = [exp("c6", "old-s1", 0.97, 300)]
    runs, unfinished = collect(
        show(
            [
                exp("c1", "s2", 0.991, 90, seed=2),
                exp("c2", "s3", 0.989, 110, seed=3),
                exp("c3", "p1", 0.987, 130, variant="paper"),
                exp("c4", "broken", 0.99, 100, executor="failed", seed=9),
                exp("c5", "s2-again", 0.991, 90, seed=2),
            ],
            [other_commit],
        )
    )
    assert {u["experiment"] for u in unfinished} == {"broken"}
    groups = {(g["name"], g["commit"][0]): g for g in summarise(runs)}
    default = groups[("default", "a")]
    assert default["n"] == 2  # seeds 2 and 3; seed 2 run twice counts once; HEAD's own metrics not at all
    assert default["mean"] == pytest.approx((0.991 + 0.989) / 2)
    assert groups[("train.variant=paper", "a")]["n"] == 1 and groups[("train.variant=paper", "a")]["ci95"] is None
    assert groups[("default", "b")]["n"] == 1  # another commit: its own group
    assert "– (n = 1)" in markdown(list(groups.values()))


def test_runs_pool_across_machines_only_inside_the_bit_exact_promise():
    intel, amd = platform("GenuineIntel"), platform("AuthenticAMD")
    fast_intel, fast_amd = (platform(v, "fast", covered=False) for v in ("GenuineIntel", "AuthenticAMD"))
    runs, _ = collect(
        show(
            [
                exp("c1", "s1", 0.990, 100, platform=intel, seed=1),
                exp("c2", "s2", 0.989, 110, platform=amd, seed=2),
                exp("c3", "f1", 0.980, 200, platform=fast_intel, seed=1),
                exp("c4", "f2", 0.981, 190, platform=fast_intel, seed=2),
                exp("c5", "f3", 0.982, 180, platform=fast_amd, seed=3),
            ]
        )
    )
    groups = {g["name"]: g for g in summarise(runs)}
    assert groups["default"]["n"] == 2  # Intel and AMD inside the promise: the same bits, one group
    assert groups["default [fast, Linux, x86_64, GenuineIntel, Xeon, 2.14.1, 1]"]["n"] == 2
    assert groups["default [fast, Linux, x86_64, AuthenticAMD, Xeon, 2.14.1, 1]"]["n"] == 1
    assert groups["default"]["runs"][1]["platform"]["cpu_vendor"] == "AuthenticAMD"


def test_committed_seed_results_are_consistent():
    path = ROOT / "results" / "seeds.json"
    if not path.exists():
        pytest.skip("results/seeds.json not written yet")
    groups = json.loads(path.read_text())["groups"]
    assert groups
    for group in groups:
        assert set(group) >= {"name", "params", "n", "mean", "std", "ci95", "runs"}
        assert group["n"] == len(group["runs"])
        for run in group["runs"]:
            assert set(run) == {"experiment", "commit", "seed_params", "accuracy", "errors", "platform"}
            assert run["platform"] is None or run["platform"]["bit_exact_promise"] == "covered"
            assert len(run["commit"]) == 40 and 0 <= run["accuracy"] <= 1
            assert run["errors"] == round((1 - run["accuracy"]) * 10000)
        recomputed = describe([run["accuracy"] for run in group["runs"]])
        assert group["mean"] == pytest.approx(recomputed["mean"])
        if group["n"] > 1:
            assert group["std"] == pytest.approx(recomputed["std"])
            assert group["ci95"] == pytest.approx(recomputed["ci95"])


def test_compare_out_writes_the_printed_comparison(tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from lenet1.tools import compare, summarize

    other_commit = state("b" * 40, params(), 0.97, 300, "old")
    other_commit["experiments"] = [exp("d1", "o1", 0.97, 300, seed=1), exp("d2", "o2", 0.98, 200, seed=2)]
    document = show([exp("c1", "s1", 0.99, 100, seed=1), exp("c2", "s2", 0.991, 90, seed=2)], [other_commit])
    monkeypatch.setattr(
        compare.subprocess, "run", lambda *a, **k: SimpleNamespace(returncode=0, stdout=json.dumps(document))
    )
    monkeypatch.setattr(compare, "predictions_correct", lambda rev: [rev.startswith("c"), True, rev == "d2"])
    out = tmp_path / "comparison.json"
    assert summarize.main(["--all", "--compare", "default@a", "default@b", "--compare-out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed[printed.index("\n{") + 1 :] == out.read_text()  # the JSON after the table, as written
    written = json.loads(out.read_text())
    assert written["first"] == "default@a" and written["second"] == "default@b"
    assert written["mean_difference"] == pytest.approx(((0.99 - 0.97) + (0.991 - 0.98)) / 2)
    assert [pair["only_first_right"] for pair in written["mcnemar"]] == [1, 1]
    with pytest.raises(SystemExit):
        summarize.main(["--compare-out", str(out)])


def test_a_failing_dvc_or_git_is_one_clear_error(monkeypatch, capsys):
    from types import SimpleNamespace

    from lenet1.tools import compare, summarize

    def missing(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(compare.subprocess, "run", missing)
    assert summarize.main([]) == 1
    assert "summarize: error: dvc exp show: cannot run" in capsys.readouterr().err
    failed = SimpleNamespace(returncode=253, stdout="", stderr="ERROR: you are not inside of a DVC repository")
    monkeypatch.setattr(compare.subprocess, "run", lambda *a, **k: failed)
    assert summarize.main([]) == 1
    assert "dvc exp show failed: ERROR: you are not inside of a DVC repository" in capsys.readouterr().err
    failed.stderr = "fatal: path 'plots/test_predictions.csv' does not exist in 'c1'"
    with pytest.raises(
        summarize.SummaryError, match="reading plots/test_predictions.csv of experiment c1.*does not exist"
    ):
        compare.predictions_correct("c1")


def test_history_adds_this_commits_groups_and_keeps_the_others(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from lenet1.tools import compare, summarize

    history = tmp_path / "seeds.json"
    old_run = {
        "experiment": "o1",
        "commit": "b" * 40,
        "seed_params": {"train.seed": 1},
        "accuracy": 0.97,
        "errors": 300,
        "platform": None,
    }
    stale = {**old_run, "commit": "a" * 40, "accuracy": 0.5, "errors": 5000}
    history.write_text(
        json.dumps(
            {
                "groups": [
                    {
                        "name": "default",
                        "commit": "b" * 40,
                        "params": {},
                        "n": 1,
                        "mean": 0.97,
                        "std": None,
                        "ci95": None,
                        "runs": [old_run],
                    },
                    {
                        "name": "default",
                        "commit": "a" * 40,
                        "params": {},
                        "n": 1,
                        "mean": 0.5,
                        "std": None,
                        "ci95": None,
                        "runs": [stale],
                    },
                ]
            }
        )
    )
    document = show([exp("c1", "s1", 0.99, 100, seed=1), exp("c2", "s2", 0.991, 90, seed=2)])
    monkeypatch.setattr(
        compare.subprocess, "run", lambda *a, **k: SimpleNamespace(returncode=0, stdout=json.dumps(document))
    )
    assert summarize.main(["--history", str(history)]) == 0
    groups = json.loads(history.read_text())["groups"]
    assert [(g["commit"][0], g["n"]) for g in groups] == [("a", 2), ("b", 1)]  # a's group replaced, b's kept
    table = history.with_suffix(".md").read_text()
    assert "| default | aaaaaaa | 2 | 99.05%" in table and "| default | bbbbbbb | 1 | 97.00%" in table


def test_groups_report_the_mean_training_accuracy_of_the_kept_epochs():
    """Whether the network fits its input better than it generalises (issue: the paper's number)."""
    runs = [exp(f"{seed}" * 40, f"e{seed}", 0.98, 200, seed=seed) for seed in (2, 3)]
    for run, trained in zip(runs, (0.97, 0.99)):
        run["revs"][0]["data"]["metrics"]["metrics/train.json"] = {"data": {"train_accuracy": trained}}
    [group] = summarise(collect(show(runs))[0])
    assert group["mean_train_accuracy"] == pytest.approx(0.98)
    assert markdown([group]).splitlines()[2].endswith("| 98.00% |")
    del (
        runs[0]["revs"][0]["data"]["metrics"]["metrics/train.json"],
        runs[1]["revs"][0]["data"]["metrics"]["metrics/train.json"],
    )
    [group] = summarise(collect(show(runs))[0])
    assert group["mean_train_accuracy"] is None and markdown([group]).splitlines()[2].endswith("| – |")
