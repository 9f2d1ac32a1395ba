"""Training speed of LeNet-1 on the CPU: our in-memory loop vs the standard
torchvision ``MNIST`` + ``DataLoader`` loop, the exact engine vs stock PyTorch for every variant x loss
per batch size, and the time to 98.9% test accuracy of the default, the default in fast mode and the old default
(``time_to_accuracy.py``, with params.yaml's variant whatever ``--variant`` says).

    .venv/bin/python bench/train_speed.py [--images 20000] [--repeats 3] [--json bench/train_speed.json]

Both loops train the same fresh model on the same MNIST training digits in
the same order (``randperm`` from the same seed, as ``RandomSampler`` draws
it) with the same SGD steps, so they must end at the same loss, which the table
shows; the data path differs, and ours calls ``train_epoch`` (for the exact engine, an epoch of
steps in one C call) where the standard loop calls ``train_step`` per batch.  The best of ``--repeats``
timings counts, since other load only ever slows a run down: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a script in bench/ gets bench/ on sys.path, not the repository root

from lenet1.data import idx, mnist  # noqa: E402
from lenet1.pipeline import paths  # noqa: E402
from lenet1.pipeline.determinism import configure_environment  # noqa: E402
from lenet1.outputs import write_atomic  # noqa: E402
from lenet1.config.params import load_section  # noqa: E402

import time_to_accuracy  # noqa: E402  (bench/, beside this script)

WARMUP_IMAGES = 512  # first batches pay for lazy init and allocator growth; not timed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20000, help="images per timing (default %(default)s)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timings per case; the best counts (default %(default)s)"
    )
    parser.add_argument(
        "--batch-sizes",
        type=lambda text: time_to_accuracy.int_list(text, 1),
        default=[16, 64, 128],
        help="exact vs fast at these batch sizes (default 16,64,128)",
    )
    parser.add_argument("--threads", type=int, help="default: $LENET1_THREADS or every CPU")
    parser.add_argument("--variant", default="full", choices=("full", "paper"), help="the loops' comparison's variant")
    parser.add_argument(
        "--raw-dir", type=Path, default=ROOT / paths.RAW_DIR, help="MNIST IDX files (default: data/raw)"
    )
    parser.add_argument(
        "--target", type=float, default=0.989, help="test accuracy for the time to accuracy (default %(default)s)"
    )
    parser.add_argument(
        "--seeds",
        type=time_to_accuracy.int_list,
        default=[1],
        help="comma-separated train.seed values for the time to accuracy (default 1)",
    )
    parser.add_argument(
        "--no-time-to-accuracy",
        dest="time_to_accuracy",
        action="store_false",
        help="skip the time to accuracy (minutes of training; needs `dvc repro split`)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--wide-only",
        action="store_true",
        help="the exact engine without its 2-lane build (default: 2 lanes below batch 4)",
    )
    args = parser.parse_args(argv)
    args.threads = time_to_accuracy.threads_or_default(parser, args.threads)
    if min(args.images, args.repeats) < 1:
        parser.error("--images and --repeats must be >= 1")
    return args


def load_ours(raw_dir: Path):
    """The MNIST training digits as in-memory normalised tensors, as the train stage holds them."""
    import torch

    from lenet1.data.split import to_inputs
    from lenet1.train import Split

    images = torch.from_numpy(idx.read_images(raw_dir / mnist.TRAIN_IMAGES).copy())
    labels = torch.from_numpy(idx.read_labels(raw_dir / mnist.TRAIN_LABELS).astype("int64"))
    return Split(to_inputs(images), labels)


def load_standard(raw_dir: Path, root: Path):
    """torchvision's MNIST training set, read from symlinks to our raw IDX files (no download)."""
    from torchvision import datasets, transforms

    from lenet1.data.split import MNIST_MEAN, MNIST_STD

    folder = root / "MNIST" / "raw"  # where torchvision looks for the uncompressed files
    folder.mkdir(parents=True)
    for pair in mnist.FILES.values():
        for name in pair:
            (folder / name).symlink_to((raw_dir / name).resolve())
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    return datasets.MNIST(str(root), train=True, transform=transform)


def timed(loop, batch_size: int, images: int, case: tuple[str, str, str], lr: float, probe) -> dict[str, float]:
    """Seconds, images/s and final mean loss of ``loop`` training a fresh model on ``images`` digits;
    ``case`` is (variant, loss, engine); the exact engine's probe runs on ``probe``, before the clock starts."""
    import torch

    from lenet1.engine import make_engine
    from lenet1.model import build_model

    variant, loss_name, engine_name = case
    engine = make_engine(engine_name, build_model(variant, 1), loss_name, *probe)
    generator = torch.Generator().manual_seed(1)
    started = time.perf_counter()
    loss = loop(engine, generator, batch_size, images, lr)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images_per_s": images / seconds, "loss": loss}


def ours_loop(data):
    def loop(engine, generator, batch_size: int, images: int, lr: float) -> float:
        import torch

        order = torch.randperm(len(data.labels), generator=generator)[:images]
        return engine.train_epoch(data.inputs, data.labels, order, batch_size, lr, 0.0)[0]

    return loop


def standard_loop(dataset):
    def loop(engine, generator, batch_size: int, images: int, lr: float) -> float:
        import torch
        from torch.utils.data import DataLoader, RandomSampler

        total, seen = torch.zeros((), dtype=torch.float64), 0
        # shuffle=True through its sampler: DataLoader(generator=) would first draw a worker seed from it.
        for inputs, labels in DataLoader(
            dataset, batch_size=batch_size, sampler=RandomSampler(dataset, generator=generator)
        ):
            loss, _ = engine.train_step(inputs, labels, lr, 0.0)
            total += loss * len(labels)  # as train_epoch sums
            seen += len(labels)
            if seen >= images:
                break
        return total.item() / seen

    return loop


def best(
    loop, batch_size: int, args: argparse.Namespace, case: tuple[str, str, str], lr: float, probe
) -> dict[str, float]:
    timed(loop, batch_size, min(WARMUP_IMAGES, args.images), case, lr, probe)
    runs = [timed(loop, batch_size, args.images, case, lr, probe) for _ in range(args.repeats)]
    return max(runs, key=lambda run: run["images_per_s"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    from lenet1.config.learning import TrainParams  # here: torch only after configure_environment

    from lenet1.architecture import LOSSES, VARIANTS

    train = load_section(ROOT / paths.PARAMS, "train", TrainParams)
    lr = train.lr
    data = load_ours(args.raw_dir)
    ours, probe = ours_loop(data), (data.inputs, data.labels)
    with tempfile.TemporaryDirectory() as root:
        standard = standard_loop(load_standard(args.raw_dir, Path(root)))
        case = (args.variant, "cross_entropy", "exact")
        loops = [
            {
                "batch_size": size,
                "ours": best(ours, size, args, case, lr, probe),
                "standard": best(standard, size, args, case, lr, probe),
            }
            for size in sorted({16, train.batch_size})
        ]
    modes = [
        {
            "variant": variant,
            "loss": loss,
            "batch_size": size,
            "exact": best(ours, size, args, (variant, loss, "exact"), lr, probe),
            "fast": best(ours, size, args, (variant, loss, "stock"), lr, probe),
        }
        for variant in VARIANTS
        for loss in LOSSES
        for size in args.batch_sizes
    ]
    results = {
        "settings": {
            "images": args.images,
            "repeats": args.repeats,
            "threads": args.threads,
            "lr": lr,
            "statistic": "best",
            "variant": args.variant,
        },
        "loops": loops,
        "modes": modes,
    }
    if args.time_to_accuracy:
        results["time_to_accuracy"] = time_to_accuracy.run(args)
    return results


def format_table(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [
        f"LeNet-1 '{s['variant']}', {s['threads']} threads, {s['images']:,} images per timing, best of {s['repeats']}",
        "",
        f"{'batch':>5} {'ours img/s':>11} {'standard img/s':>15} {'ours/standard':>14} "
        f"{'loss ours':>10} {'loss std':>10}",
    ]
    for row in results["loops"]:
        o, t = row["ours"], row["standard"]
        lines.append(
            f"{row['batch_size']:>5} {o['images_per_s']:>11,.0f} {t['images_per_s']:>15,.0f} "
            f"{o['images_per_s'] / t['images_per_s']:>13.2f}x {o['loss']:>10.6f} {t['loss']:>10.6f}"
        )
    lines += [
        "",
        f"{'variant':<7} {'loss':<13} {'batch':>5} {'exact img/s':>12} {'stock img/s':>12} {'exact/stock':>12}",
    ]
    for row in results["modes"]:
        e, f = row["exact"], row["fast"]
        lines.append(
            f"{row['variant']:<7} {row['loss']:<13} {row['batch_size']:>5} {e['images_per_s']:>12,.0f} "
            f"{f['images_per_s']:>12,.0f} {e['images_per_s'] / f['images_per_s']:>11.2f}x"
        )
    if "time_to_accuracy" in results:
        lines += ["", time_to_accuracy.table(results["time_to_accuracy"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [name for pair in mnist.FILES.values() for name in pair if not (args.raw_dir / name).is_file()]
    if missing:
        print(
            f"error: missing {', '.join(missing)} in {args.raw_dir}; "
            "run `dvc repro download` first (or pass --raw-dir)",
            file=sys.stderr,
        )
        return 1
    if args.time_to_accuracy and (problem := time_to_accuracy.missing_data()):
        print(f"error: {problem}; or pass --no-time-to-accuracy", file=sys.stderr)
        return 1
    configure_environment(args.threads)
    from lenet1.pipeline.determinism import configure_torch  # as the stages do: threads, and freed buffers kept

    configure_torch(args.threads)
    if args.wide_only:
        from lenet1.engine import libraries

        libraries.NARROW_BELOW = 1
    results = run(args)
    print(format_table(results))
    if args.json:
        write_atomic(args.json, (json.dumps(results, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
