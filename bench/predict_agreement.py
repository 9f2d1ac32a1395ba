"""How often `python -m lenet1.predict` agrees with evaluate on the committed model's test digits.

    python bench/predict_agreement.py [--digits N]

Writes the first N test digits (data/prepared/test.pt, after `dvc repro`) as 28x28 PNGs, and again dressed as
photos (dark ink on grainy light paper, 4-8 times larger, off-centre, colour JPEG), runs predict on each set
with models/lenet1.pt and prints the share whose digit is the one in plots/test_predictions.csv.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def photo(image: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """An MNIST digit dressed as a photo: dark ink on grainy light paper, larger, off-centre, colour."""
    scale = int(rng.integers(4, 9))
    ink = Image.fromarray(255 - image).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC)
    paper = np.clip(rng.normal(225, 4, (ink.height + 120, ink.width + 200)), 0, 255)
    left, top = int(rng.integers(0, 200)), int(rng.integers(0, 120))
    area = paper[top : top + ink.height, left : left + ink.width]
    area[:] = np.minimum(area, np.asarray(ink, dtype=np.float64))
    return Image.fromarray(paper.astype(np.uint8)).convert("RGB")


def main() -> None:
    from lenet1.data.split import load_split
    from lenet1.pipeline import paths
    from lenet1.predict import predict

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=10000)
    count = parser.parse_args().digits
    images = load_split(paths.PREPARED_DIR / "test.pt").images[:count].numpy()
    evaluated = [int(row["predicted"]) for row in csv.DictReader(paths.PREDICTIONS.open())][:count]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        for name, save in (
            ("28x28 PNGs", lambda image, path: Image.fromarray(image).save(f"{path}.png")),
            ("photos (JPEG)", lambda image, path: photo(image, rng).save(f"{path}.jpg", quality=90)),
        ):
            for i, image in enumerate(images):
                save(image, Path(folder) / f"{name[0]}{i}")
            pictures = sorted(Path(folder).glob(f"{name[0]}*"), key=lambda p: int(p.stem[1:]))
            rows, _ = predict(paths.MODEL, pictures)
            agree = np.mean([row["digit"] == want for row, want in zip(rows, evaluated)])
            print(f"{name}: {agree:.2%} of {count} agree with evaluate")


if __name__ == "__main__":
    main()
