"""Training speed of LeNet-1: our in-memory loop vs the standard Dataset/DataLoader loop,
in deterministic and fast mode.

Run from anywhere (paths default to the repository's data/):

    .venv/bin/python bench/train_speed.py [--images 20000] [--repeats 3] [--json out.json]

Deterministic mode sets environment variables that torch reads when it is
imported, so each mode runs in its own subprocess (this script again, with
the hidden ``--worker MODE`` flag), which prints one JSON line of timings.
The parent checks the data, runs the two workers one after the other (never
at once: they would share the cores) and prints the table.

What is compared, per mode:
- ours: ``lenet1.train.train_epoch`` on the train stage's input,
  data/prepared/train.pt, as in-memory normalised tensors;
- standard: torchvision's ``MNIST`` (all 60,000 raw training digits, PIL
  image -> ToTensor -> Normalize per sample) + ``DataLoader(shuffle=True)``
  with num_workers=0, as in PyTorch's MNIST example.
Both use the same fresh model, cross-entropy, plain SGD, batch size, thread
count and training step (including the loss/accuracy bookkeeping), so the
ratio measures the data path alone.  A digit costs the same to train on
whatever its pixels, so the 50,000 vs 60,000 source sets do not bias it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# A script in bench/ gets bench/ on sys.path, not the repository root.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Only modules that do not import torch: a worker may import it only after configure_environment.
from lenet1 import paths  # noqa: E402
from lenet1.params import MNIST_TRAIN_SIZE, load_params  # noqa: E402

MODES = {"deterministic": True, "fast": False}
WARMUP_IMAGES = 1000  # first batches pay for lazy init and allocator growth; not timed


class DataMissing(Exception):
    """Input data is absent; the message says which dvc stage makes it."""


def parse_args(train: dict[str, Any], argv: list[str] | None = None) -> argparse.Namespace:
    """Options; defaults come from the ``train`` section of params.yaml."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=train["batch_size"], help="default: params.yaml train.batch_size (%(default)s)")
    parser.add_argument("--threads", type=int, default=train["threads"], help="default: params.yaml train.threads (%(default)s)")
    parser.add_argument("--variant", choices=("full", "paper"), default=train["variant"], help="default: params.yaml train.variant (%(default)s)")
    parser.add_argument("--images", type=int, default=20000, help="images per timing, the same for both loops (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per loop; the best (fastest) counts (default %(default)s)")
    parser.add_argument("--raw-dir", type=Path, default=ROOT / paths.RAW_DIR, help="MNIST IDX files (default: data/raw)")
    parser.add_argument("--prepared-dir", type=Path, default=ROOT / paths.PREPARED_DIR, help="split files (default: data/prepared)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("batch_size", "threads", "images", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def raw_file_names() -> list[str]:
    """The four MNIST IDX file names."""
    return [name for pair in paths.RAW_FILES.values() for name in pair]


def check_data(raw_dir: Path, prepared_dir: Path) -> None:
    """Fail early, in the parent, with the dvc command that makes the missing data."""
    raw = [raw_dir / name for name in raw_file_names()]
    missing = [str(path) for path in raw if not path.is_file()]
    if missing:
        raise DataMissing(f"missing MNIST files: {', '.join(missing)}; run `dvc repro download` first (or pass --raw-dir)")
    if not (prepared_dir / "train.pt").is_file():
        raise DataMissing(f"missing {prepared_dir / 'train.pt'}; run `dvc repro split` first (or pass --prepared-dir)")


# --- worker: runs in a subprocess, one mode, torch imported after the environment is set


def run_worker(args: argparse.Namespace, params: dict[str, Any]) -> dict[str, Any]:
    """Time both loops in one mode; the raw timings and what the mode set up."""
    deterministic = MODES[args.worker]
    from lenet1.determinism import configure_environment

    configure_environment(deterministic, args.threads)  # must precede `import torch`
    from lenet1.determinism import configure_torch

    configure_torch(deterministic, args.threads)
    ours_data = load_ours(args.prepared_dir)
    with tempfile.TemporaryDirectory() as root:
        standard_data = load_standard(args.raw_dir, Path(root))
        for name, size in (("prepared train split", len(ours_data.labels)), ("raw training set", len(standard_data))):
            if args.images > size:
                raise ValueError(f"--images {args.images} is more than the {size} digits of the {name}")
        time_ours(args, params, ours_data, min(WARMUP_IMAGES, args.images))
        time_standard(args, params, standard_data, min(WARMUP_IMAGES, args.images))
        ours, standard = [], []
        # Alternate the two loops so a change in the machine's load hits both alike.
        for _ in range(args.repeats):
            ours.append(time_ours(args, params, ours_data, args.images))
            standard.append(time_standard(args, params, standard_data, args.images))
    import torch

    return {
        "ours": ours, "standard": standard, "ours_images": len(ours_data.labels), "standard_images": len(standard_data),
        # Shows that the mode took effect: deterministic mode pins ATen to its DEFAULT kernels.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def load_ours(prepared_dir: Path):
    """The train stage's input: the prepared training split as normalised float tensors."""
    from lenet1.data import load_split, to_inputs
    from lenet1.train import Split

    images, labels = load_split(prepared_dir / "train.pt")
    return Split(to_inputs(images), labels)


def load_standard(raw_dir: Path, root: Path):
    """torchvision's MNIST training set, read from symlinks to our raw IDX files (no download)."""
    from torchvision import datasets, transforms

    from lenet1.data import MNIST_MEAN, MNIST_STD

    # torchvision looks for the four uncompressed files in ROOT/MNIST/raw/.
    folder = root / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for name in raw_file_names():
        (folder / name).symlink_to((raw_dir / name).resolve())
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    return datasets.MNIST(str(root), train=True, transform=transform)


def new_training(args: argparse.Namespace, params: dict[str, Any]):
    """A fresh model, loss and plain SGD optimizer, identical for both loops and every timing.

    Fresh each time so no timing trains a model that is further along (its
    values, e.g. saturated tanh units, could change the cost of the arithmetic).
    """
    import torch

    from lenet1.model import build_model
    from lenet1.train import make_loss

    model = build_model(args.variant, params["init_seed"])
    optimizer = torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=0.0, weight_decay=0.0)
    return model, make_loss("cross_entropy", model), optimizer


def time_ours(args: argparse.Namespace, params: dict[str, Any], data, images: int) -> dict[str, float]:
    """Seconds for one train_epoch over the first ``images`` digits of ``data``."""
    import torch

    from lenet1.train import Split, train_epoch

    model, loss_fn, optimizer = new_training(args, params)
    subset = Split(data.inputs[:images], data.labels[:images])
    generator = torch.Generator().manual_seed(params["order_seed"])
    started = time.perf_counter()
    train_epoch(model, subset, args.batch_size, optimizer, loss_fn, generator)  # ends with .item(): work is done
    return {"seconds": time.perf_counter() - started, "images": images}


def time_standard(args: argparse.Namespace, params: dict[str, Any], dataset, images: int) -> dict[str, float]:
    """Seconds for the standard loop to train on at least ``images`` digits (whole batches)."""
    import torch
    from torch.utils.data import DataLoader

    from lenet1.train import train_step

    model, loss_fn, optimizer = new_training(args, params)
    torch.manual_seed(params["order_seed"])  # the DataLoader's shuffle draws from the global generator
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=0)
    model.train()
    seen = 0
    total_loss = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    started = time.perf_counter()
    for inputs, labels in loader:
        # The same step and bookkeeping as train_epoch, so only the data path differs.
        loss, outputs = train_step(model, inputs, labels, optimizer, loss_fn)
        total_loss += loss * len(labels)
        correct += (outputs.argmax(1) == labels).sum()
        seen += len(labels)
        if seen >= images:
            break
    total_loss.item(), correct.item()  # as train_epoch ends
    return {"seconds": time.perf_counter() - started, "images": seen}


# --- parent: runs the workers and reports


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one worker subprocess and return its parsed JSON line."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", mode,
        "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--variant", args.variant,
        "--images", str(args.images), "--repeats", str(args.repeats),
        "--raw-dir", str(args.raw_dir), "--prepared-dir", str(args.prepared_dir),
    ]
    print(f"running {mode} mode ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {mode} worker failed (exit {done.returncode}):\n{done.stderr.strip()}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"the {mode} worker printed no result:\n{done.stderr.strip()}")
    return json.loads(lines[-1])


def best_rate(timings: list[dict[str, float]]) -> float:
    """Images per second of the fastest timing: other users' load only ever slows a run down."""
    return max(t["images"] / t["seconds"] for t in timings)


def summarise(args: argparse.Namespace, raw: dict[str, dict[str, Any]], epoch_images: int) -> dict[str, Any]:
    """Best images/s per loop and mode, the ratios, epoch times and the cost of deterministic mode."""
    modes = {}
    for mode, result in raw.items():
        ours, standard = best_rate(result["ours"]), best_rate(result["standard"])
        modes[mode] = {
            "ours_images_per_s": ours,
            "standard_images_per_s": standard,
            "ratio": ours / standard,
            "epoch_seconds": epoch_images / ours,
            "cpu_capability": result["cpu_capability"],
            "ours_timings": result["ours"],
            "standard_timings": result["standard"],
        }
    return {
        "settings": {
            "variant": args.variant, "batch_size": args.batch_size, "threads": args.threads,
            "images": args.images, "repeats": args.repeats, "statistic": "best", "warmup_images": min(WARMUP_IMAGES, args.images),
            "epoch_images": epoch_images,
            "ours_data": f"{args.prepared_dir / 'train.pt'} ({raw['fast']['ours_images']:,} digits)",
            "standard_data": f"torchvision MNIST over {args.raw_dir} ({raw['fast']['standard_images']:,} digits)",
        },
        "modes": modes,
        # det_time / fast_time - 1, from the epoch time of our loop.
        "deterministic_cost": modes["deterministic"]["epoch_seconds"] / modes["fast"]["epoch_seconds"] - 1,
    }


def format_table(results: dict[str, Any]) -> str:
    """The results of ``summarise`` as a few lines of text."""
    s = results["settings"]
    epoch = f"s/epoch ({s['epoch_images']:,} img)"
    lines = [
        f"LeNet-1 '{s['variant']}', batch {s['batch_size']}, {s['threads']} threads; "
        f"{s['images']:,} images per timing, best of {s['repeats']}, after a {s['warmup_images']:,}-image warm-up",
        f"ours:     lenet1.train.train_epoch on in-memory tensors of {s['ours_data']}",
        f"standard: {s['standard_data']} + ToTensor/Normalize + DataLoader(shuffle=True, num_workers=0)",
        "",
        f"{'mode':<14} {'ours img/s':>11} {'standard img/s':>15} {'ours/standard':>14} {epoch:>24}  ATen kernels",
    ]
    for mode, m in results["modes"].items():
        lines.append(
            f"{mode:<14} {m['ours_images_per_s']:>11,.0f} {m['standard_images_per_s']:>15,.0f} "
            f"{m['ratio']:>13.2f}x {m['epoch_seconds']:>24.2f}  {m['cpu_capability']}"
        )
    lines.append("")
    lines.append(
        f"deterministic mode costs {results['deterministic_cost']:+.1%} epoch time (det / fast - 1; "
        "training pass of our loop only, fit also scores the validation split each epoch)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    params = load_params(ROOT / paths.PARAMS)
    args = parse_args(params["train"], argv)
    if args.worker:
        try:
            result = run_worker(args, params["train"])
        except (FileNotFoundError, ValueError) as err:  # bad data or options: a message, not a traceback
            print(f"error: {err}", file=sys.stderr)
            return 1
        # stdout carries only the result line, for the parent to parse.
        print(json.dumps(result), flush=True)
        return 0
    try:
        check_data(args.raw_dir, args.prepared_dir)
        raw = {mode: run_mode(mode, args) for mode in MODES}
    except (DataMissing, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    # The train stage's epoch: the 60,000 training digits minus the validation split.
    results = summarise(args, raw, MNIST_TRAIN_SIZE - params["split"]["val_size"])
    print(format_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
