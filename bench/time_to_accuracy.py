"""Time to a test accuracy: seconds of training until LeNet-1 first reaches ``--target`` on the test set.

    .venv/bin/python bench/time_to_accuracy.py [--target 0.989] [--seeds 1] [--json bench/time_to_accuracy.json]

Trains, in one run on one machine, each configuration for each seed:
  default            the train section of params.yaml
  default, fast      the same with train.deterministic: false (stock torch arithmetic)
  old default        the defaults before the schedule was tuned (12 epochs, batch 16, lr 0.3, cosine),
                     in today's deterministic arithmetic
  old default, fast  the same in stock torch arithmetic: the kernels the old default ran on when issue 12
                     was filed (then with torch's deterministic algorithms on, which only slowed them)
A config equal to an earlier one (the old default is today's) is trained once, under the earlier name.
After every epoch the test accuracy is measured (not timed; it plays no part in training).  The
figure is the training time up to the first epoch at or above the target, and the whole run's
time and final accuracy.  The machine's speed varies between runs: compare ratios within a run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a script in bench/ gets bench/ on sys.path, not the repository root

from lenet1.pipeline import paths  # noqa: E402
from lenet1.pipeline.determinism import configure_environment, thread_count  # noqa: E402
from lenet1.errors import InputError  # noqa: E402
from lenet1.outputs import write_atomic  # noqa: E402
from lenet1.config.params import load_section  # noqa: E402

OLD_DEFAULT = {"epochs": 12, "batch_size": 16, "lr": 0.3, "schedule": "cosine"}  # params.yaml at 531ce9d


def int_list(text: str, low: int = 0) -> list[int]:
    """``"1,2,3"`` as [1, 2, 3]: an argparse type, each value at least ``low``."""
    try:
        values = [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated whole numbers, e.g. 1,2,3") from None
    if min(values) < low:
        raise argparse.ArgumentTypeError(f"{text!r}: each value must be at least {low}")
    return values


def threads_or_default(parser: argparse.ArgumentParser, threads: int | None) -> int:
    """--threads if given (at least 1), else $LENET1_THREADS or every CPU; a bad value is a usage error."""
    if threads is not None and threads < 1:
        parser.error("--threads must be >= 1")
    try:
        return threads or thread_count()
    except InputError as err:
        parser.error(str(err))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=0.989, help="test accuracy to reach (default %(default)s)")
    parser.add_argument("--seeds", type=int_list, default=[1], help="comma-separated train.seed values (default 1)")
    parser.add_argument("--threads", type=int, help="default: $LENET1_THREADS or every CPU")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    args.threads = threads_or_default(parser, args.threads)
    return args


def train_until(config: Any, seed: int, train: Any, test: Any, target: float) -> dict[str, Any]:
    """Train ``config`` with ``seed``, as ``lenet1.train.fit`` does; per epoch the cumulative training seconds
    and the test accuracy."""
    from lenet1.model import build_model
    from lenet1.train import engine_for, sgd_epochs

    config = dataclasses.replace(config, seed=seed)
    engine = engine_for(config, build_model(config.variant, config.seed), train)
    seconds, epochs = 0.0, []
    started = time.perf_counter()
    for epoch, *_ in sgd_epochs(config, train, engine):
        seconds += time.perf_counter() - started
        accuracy = (engine.predict(test.inputs, 1000).argmax(1) == test.labels).float().mean().item()
        epochs.append({"epoch": epoch, "seconds": round(seconds, 2), "test_accuracy": accuracy})
        started = time.perf_counter()  # the test pass is not training time
    reached = next((row for row in epochs if row["test_accuracy"] >= target), None)
    return {
        "seed": seed,
        "seconds_to_target": reached["seconds"] if reached else None,
        "epoch_at_target": reached["epoch"] if reached else None,
        "seconds": epochs[-1]["seconds"],
        "final_test_accuracy": epochs[-1]["test_accuracy"],
        "epochs": epochs,
    }


def missing_data() -> str | None:
    """None when the split stage's outputs exist, else what to run."""
    missing = [name for name in ("train", "test") if not (ROOT / paths.PREPARED_DIR / f"{name}.pt").is_file()]
    return f"missing {', '.join(missing)}.pt in {paths.PREPARED_DIR}: run `dvc repro split` first" if missing else None


def distinct(candidates: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The configs to train, and each name left out -> the earlier name of the same config."""
    configs: dict[str, Any] = {}
    same_as: dict[str, str] = {}
    for name, config in candidates.items():
        twin = next((other for other, known in configs.items() if known == config), None)
        if twin:
            same_as[name] = twin
        else:
            configs[name] = config
    return configs, same_as


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train each configuration for each of ``args.seeds`` until ``args.target``; ``args.threads`` torch threads."""
    from lenet1.data.split import load_split, to_inputs
    from lenet1.pipeline.determinism import configure_torch
    from lenet1.config.learning import TrainParams
    from lenet1.train import Split

    configure_torch(args.threads)
    default = load_section(ROOT / paths.PARAMS, "train", TrainParams)
    old = dataclasses.replace(default, **OLD_DEFAULT)
    candidates = {
        "default": default,
        "default, fast": dataclasses.replace(default, deterministic=False),
        "old default": old,
        "old default, fast": dataclasses.replace(old, deterministic=False),
    }
    configs, same_as = distinct(candidates)
    splits = {}
    for name in ("train", "test"):
        images, labels, kind = load_split(ROOT / paths.PREPARED_DIR / f"{name}.pt")
        splits[name] = Split(to_inputs(images, kind), labels)
    results = []
    for name, config in configs.items():
        for seed in args.seeds:
            print(f"training {name}, seed {seed}: {config.epochs} epochs, batch {config.batch_size}", flush=True)
            results.append({"config": name, **train_until(config, seed, splits["train"], splits["test"], args.target)})
    return {
        "target": args.target,
        "threads": args.threads,
        "configs": {k: dataclasses.asdict(v) for k, v in configs.items()},
        "same_as": same_as,
        "runs": results,
    }


def table(report: dict[str, Any]) -> str:
    """A row per run; with several seeds, then ``summary``'s row per config."""
    lines = [
        f"| config | seed | seconds to {report['target']:.1%} | epoch | total seconds | final test accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        reached = f"{r['seconds_to_target']:.1f}" if r["seconds_to_target"] is not None else "not reached"
        lines.append(
            f"| {r['config']} | {r['seed']} | {reached} | {r['epoch_at_target'] or '-'} | {r['seconds']:.1f} | "
            f"{r['final_test_accuracy']:.2%} |"
        )
    if len({r["seed"] for r in report["runs"]}) > 1:
        lines += ["", summary(report)]
    return "\n".join(lines)


def _mean_ci(values: list[float], form: str) -> str:
    from lenet1.tools.stats import describe

    if not values:
        return "-"
    d = describe(values)
    return form.format(d["mean"]) + (
        f" [{form.format(d['ci95'][0])}, {form.format(d['ci95'][1])}]" if d["ci95"] else ""
    )


def summary(report: dict[str, Any]) -> str:
    """Per config over its seeds: how many reach the target; mean and 95% t-interval of the seconds to it
    (over the seeds that reach it), of the whole run's seconds and of the final test accuracy."""
    lines = [
        f"| config | seeds reaching {report['target']:.1%} | seconds to it | total seconds | final test accuracy |",
        "|---|---|---|---|---|",
    ]
    for config in dict.fromkeys(result["config"] for result in report["runs"]):
        runs = [result for result in report["runs"] if result["config"] == config]
        reached = [result["seconds_to_target"] for result in runs if result["seconds_to_target"] is not None]
        lines.append(
            f"| {config} | {len(reached)} of {len(runs)} | {_mean_ci(reached, '{:.1f}')} | "
            f"{_mean_ci([result['seconds'] for result in runs], '{:.1f}')} | "
            f"{_mean_ci([100 * result['final_test_accuracy'] for result in runs], '{:.2f}%')} |"
        )
    return "\n".join(lines + ["", speedups(report)])


def speedups(report: dict[str, Any]) -> str:
    """How many times faster the default is than each other config: the ratios of the mean seconds of the
    whole run and, over the seeds where both reach the target, to the target.  A config trained under
    another name (``same_as``) is compared through that name's runs."""
    by_config: dict[str, dict[int, dict[str, Any]]] = {}
    for result in report["runs"]:
        by_config.setdefault(result["config"], {})[result["seed"]] = result
    same_as = report.get("same_as", {})
    default = by_config.get("default", {})
    lines = [f"| the default against | whole run | to {report['target']:.1%} |", "|---|---|---|"]
    for name in [*by_config, *same_as]:
        trained = same_as.get(name, name)
        if trained == "default" or not default:
            continue
        runs = by_config[trained]
        seeds = [seed for seed in runs if seed in default]
        both = [
            s for s in seeds if runs[s]["seconds_to_target"] is not None and default[s]["seconds_to_target"] is not None
        ]
        whole = _mean(runs, seeds, "seconds") / _mean(default, seeds, "seconds")
        to_target = (
            f"{_mean(runs, both, 'seconds_to_target') / _mean(default, both, 'seconds_to_target'):.2f}x"
            if both
            else "-"
        )
        label = name if trained == name else f"{name} (= {trained})"
        lines.append(f"| {label} | {whole:.2f}x | {to_target} ({len(both)} seeds) |")
    return "\n".join(lines)


def _mean(runs: dict[int, dict[str, Any]], seeds: list[int], key: str) -> float:
    return sum(runs[seed][key] for seed in seeds) / len(seeds)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if problem := missing_data():
        print(f"error: {problem}", file=sys.stderr)
        return 1
    configure_environment(args.threads)  # before torch is imported
    report = run(args)
    print(table(report))
    if args.json:
        write_atomic(args.json, (json.dumps(report, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
