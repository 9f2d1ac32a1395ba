"""How close the exact engine comes to this machine's peak: a roofline line per variant and batch size.

    .venv/bin/python bench/roofline.py [--batch-sizes 16,64,128] [--images 20000] [--repeats 3] [--threads N]

The peak is measured, not looked up: ``roofline.c`` runs independent float32 vector multiplies and adds,
never fused (the only arithmetic the engine's promise allows), in the widest vectors the compiler
targets, on one thread and on every thread.  The engine's work per training image is counted from the
layer shapes (``flops_per_image``: the multiply-adds of the convolutions and the output layer, forward
and backward, and the SGD update; squashing, pooling and the loss are left out, so the fraction is a
lower bound).  Needs `dvc repro download` (the MNIST training digits).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a script in bench/ gets bench/ on sys.path, not the repository root

from lenet1.architecture import ARCHITECTURES  # noqa: E402
from lenet1.data import mnist  # noqa: E402
from lenet1.pipeline import paths  # noqa: E402
from lenet1.pipeline.determinism import configure_environment  # noqa: E402

KERNEL = 5 * 5
H1_MAPS, H1_UNITS, H3_UNITS, H4_FEATURES, OUTPUTS = 4, 24 * 24, 8 * 8, 12 * 4 * 4, 10


def flops_per_image(variant: str) -> dict[str, int]:
    """Multiplies and adds the engine does per training image in its linear layers, and its update's.

    Forward: 2 per connection (H1's and H3's kernels at every output unit, the output layer's weights).
    Backward: 2 per connection for the weight gradients and 2 for the input gradients of H3 and the
    output layer (H1's input is the image: no gradient).  Update: p - lr g, 2 per parameter.
    """
    pairs = sum(len(inputs) for inputs in ARCHITECTURES[variant].h3_table)
    h1 = H1_MAPS * H1_UNITS * KERNEL
    h3 = pairs * H3_UNITS * KERNEL
    out = OUTPUTS * H4_FEATURES
    subsampling = (4 + 4 + 12 + 12) if ARCHITECTURES[variant].trainable_subsampling else 0
    parameters = H1_MAPS * (KERNEL + 1) + pairs * KERNEL + 12 + out + OUTPUTS + subsampling
    return {"forward": 2 * (h1 + h3 + out), "backward": 2 * (h1 + 2 * h3 + 2 * out), "update": 2 * parameters}


def machine_peak(threads: int, seconds: float = 0.5) -> tuple[float, float]:
    """GFLOP/s of float32 vector multiplies and adds (no FMA) on one thread and on ``threads``."""
    from lenet1.engine.build import compiler

    with tempfile.TemporaryDirectory() as folder:
        binary = Path(folder) / "roofline"
        subprocess.run(
            [
                *compiler(),
                "-O2",
                "-march=native",
                "-ffp-contract=off",
                "-pthread",
                str(Path(__file__).with_name("roofline.c")),
                "-o",
                str(binary),
            ],
            check=True,
        )
        one, everything = subprocess.run(
            [str(binary), str(threads), str(seconds)], capture_output=True, text=True, check=True
        ).stdout.split()
    return float(one), float(everything)


def main(argv: list[str] | None = None) -> int:
    import time_to_accuracy  # bench/, beside this script

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=lambda text: time_to_accuracy.int_list(text, 1), default=[16, 64, 128])
    parser.add_argument("--images", type=int, default=20000, help="images per timing (default %(default)s)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timings per case; the best counts (default %(default)s)"
    )
    parser.add_argument("--threads", type=int, help="default: $LENET1_THREADS or every CPU")
    parser.add_argument(
        "--raw-dir", type=Path, default=ROOT / paths.RAW_DIR, help="MNIST IDX files (default: data/raw)"
    )
    args = parser.parse_args(argv)
    args.threads = time_to_accuracy.threads_or_default(parser, args.threads)
    if not (args.raw_dir / mnist.TRAIN_IMAGES).is_file():
        print(f"error: no MNIST training digits in {args.raw_dir}; run `dvc repro download` first", file=sys.stderr)
        return 1
    configure_environment(args.threads)
    from lenet1.pipeline.determinism import configure_torch

    configure_torch(args.threads)
    import train_speed

    one, everything = machine_peak(args.threads)
    print(
        f"peak, float32 vector multiply and add without FMA: {one:.1f} GFLOP/s on 1 thread, "
        f"{everything:.1f} on {args.threads}"
    )
    data = train_speed.load_ours(args.raw_dir)
    print(f"{'variant':<7} {'batch':>5} {'MFLOP/image':>12} {'img/s':>9} {'GFLOP/s':>8} {'of peak':>8}")
    for variant in ARCHITECTURES:
        flops = sum(flops_per_image(variant).values())
        for size in args.batch_sizes:
            run = train_speed.best(
                train_speed.ours_loop(data),
                size,
                args,
                (variant, "cross_entropy", "exact"),
                0.1,
                (data.inputs, data.labels),
            )
            achieved = run["images_per_s"] * flops / 1e9
            print(
                f"{variant:<7} {size:>5} {flops / 1e6:>12.3f} {run['images_per_s']:>9,.0f} {achieved:>8.1f} "
                f"{achieved / everything:>7.1%}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
