"""Train STEPS steps of LeNet-1 (default: 'full', cross-entropy, the exact engine) on random digits, one
engine call per step (``--epochs``: per 64 steps, as the train stage's epochs): a whole process to time
from outside, or with ``--profile`` the top ATen operations of those steps (torch.profiler, self CPU time).

    .venv/bin/python bench/train_steps.py [--repo DIR] [--variant paper] [--loss mse] [--engine stock] [--epochs]
                                          [--profile] [--top 8] BATCH_SIZE STEPS THREADS

Before/after timings of the step and of start-up, paired, e.g. against a worktree of an older commit:
    hyperfine -N --runs 4 "python bench/train_steps.py 32 2000 2" "python bench/train_steps.py --repo OLD 32 2000 2"
and its profile:  python bench/train_steps.py --profile 32 100 1   (after 20 untimed warm-up steps)
64 batches of seeded random inputs are cycled through; lr 0.1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument(
    "--repo", type=Path, default=Path(__file__).resolve().parents[1], help="whose lenet1 (default: this checkout)"
)
parser.add_argument("--profile", action="store_true", help="print the top ATen operations of the STEPS steps")
parser.add_argument("--top", type=int, default=8, help="how many operations --profile prints (default %(default)s)")
parser.add_argument("--variant", default="full", choices=("full", "paper"))
parser.add_argument("--loss", default="cross_entropy", choices=("cross_entropy", "mse"))
parser.add_argument("--engine", default="exact", choices=("exact", "stock"))
parser.add_argument("--wide-only", action="store_true", help="the exact engine without its 2-lane build")
parser.add_argument(
    "--epochs",
    action="store_true",
    help="the steps as train_epoch calls of 64 batches each (as the train stage calls), not a call per step",
)
parser.add_argument("batch_size", type=int)
parser.add_argument("steps", type=int)
parser.add_argument("threads", type=int)
args = parser.parse_args()
sys.path.insert(0, str(args.repo.resolve()))
from lenet1.pipeline.determinism import configure_environment, configure_torch  # noqa: E402

configure_environment(args.threads)  # before torch is imported, as the stages do
import torch  # noqa: E402

from lenet1.engine import make_engine  # noqa: E402
from lenet1.model import build_model  # noqa: E402

configure_torch(args.threads)  # as the train stage does (--repo's own version)
if args.wide_only:
    from lenet1.engine import libraries

    libraries.NARROW_BELOW = 1
generator = torch.Generator().manual_seed(0)
batch = args.batch_size
inputs = torch.randn(64 * batch, 1, 28, 28, generator=generator)
labels = torch.randint(0, 10, (64 * batch,), generator=generator)
engine = make_engine(args.engine, build_model(args.variant, 1), args.loss, inputs, labels)


def train(steps: int) -> None:
    if args.epochs:
        for start in range(0, steps, 64):
            order = torch.arange(min(64, steps - start) * batch)
            engine.train_epoch(inputs, labels, order, batch, 0.1, 0.0)
        return
    for step in range(steps):
        chosen = slice(step % 64 * batch, (step % 64 + 1) * batch)
        engine.train_step(inputs[chosen], labels[chosen], 0.1, 0.0)


if not args.profile:
    train(args.steps)
    sys.exit(0)
train(20)  # warm-up: lazy initialisation and allocator growth stay out of the profile
with torch.profiler.profile() as profile:
    train(args.steps)
events = profile.key_averages()
total = sum(event.self_cpu_time_total for event in events)
aten = sorted((e for e in events if e.key.startswith("aten::")), key=lambda e: -e.self_cpu_time_total)
print(
    f"self CPU per step {total / args.steps / 1000:.2f} ms, "
    f"{sum(e.count for e in aten) / args.steps:.0f} ATen calls per step (nested ones included)"
)
for event in aten[: args.top]:
    print(f"{event.key:<32} {event.self_cpu_time_total / total:>6.1%} {event.count // args.steps:>4} per step")
