"""The top ATen operations of one exact training step (``torch.profiler``, self CPU time).

    .venv/bin/python bench/profile_step.py [--batch-size 32] [--threads 1] [--steps 100] [--top 8] [--repo DIR]

Trains the default 'full' model on random 28x28 inputs: 20 warm-up steps, then
``--steps`` profiled ones.  ``--repo`` imports ``lenet1`` from another checkout (e.g.
a ``git worktree`` of an older commit) to compare before and after.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose lenet1 to profile (default: this one)")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)  # before torch is imported
    sys.path.insert(0, str(args.repo.resolve()))
    import torch
    from torch.profiler import profile

    from lenet1.model import build_model
    from lenet1.train import SGD, make_loss, train_step

    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(args.batch_size, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (args.batch_size,), generator=generator)
    model = build_model("full", 1, exact=True)
    optimizer, loss_fn = SGD(model.parameters(), lr=0.01), make_loss("cross_entropy", model)
    for _ in range(20):
        train_step(model, inputs, labels, optimizer, loss_fn)
    with profile() as prof:
        for _ in range(args.steps):
            train_step(model, inputs, labels, optimizer, loss_fn)
    events = prof.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    aten = sorted((e for e in events if e.key.startswith("aten::")), key=lambda e: -e.self_cpu_time_total)
    print(f"self CPU per step {total / args.steps / 1000:.2f} ms, "
          f"{sum(e.count for e in aten) / args.steps:.0f} ATen calls per step (nested ones included)")
    for event in aten[: args.top]:
        print(f"{event.key:<32} {event.self_cpu_time_total / total:>6.1%} {event.count // args.steps:>4} per step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
