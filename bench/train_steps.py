"""Train STEPS exact steps of the default 'full' model on random digits: a whole process to time from outside.

    .venv/bin/python bench/train_steps.py [--repo DIR] BATCH_SIZE STEPS THREADS

For before/after timings of the step and of start-up, paired, e.g. with a worktree of an older commit:
    farm-bench -n 4 --vs "python bench/train_steps.py --repo OLD 32 2000 2" -- python bench/train_steps.py 32 2000 2
64 batches of seeded random inputs are cycled through; lr 0.1.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1], help="whose lenet1 (default: this checkout)")
parser.add_argument("batch_size", type=int)
parser.add_argument("steps", type=int)
parser.add_argument("threads", type=int)
args = parser.parse_args()
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)  # before torch is imported
sys.path.insert(0, str(args.repo.resolve()))

import torch  # noqa: E402

from lenet1.model import build_model  # noqa: E402
from lenet1.train import SGD, make_loss, train_step  # noqa: E402

torch.set_num_threads(args.threads)
generator = torch.Generator().manual_seed(0)
batch = args.batch_size
inputs = torch.randn(64 * batch, 1, 28, 28, generator=generator)
labels = torch.randint(0, 10, (64 * batch,), generator=generator)
model = build_model("full", 1, exact=True)
optimizer, loss_fn = SGD(model.parameters(), lr=0.1), make_loss("cross_entropy", model)
for step in range(args.steps):
    chosen = slice(step % 64 * batch, (step % 64 + 1) * batch)
    train_step(model, inputs[chosen], labels[chosen], optimizer, loss_fn)
