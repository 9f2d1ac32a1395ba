"""Draw the plot stage's four figures from fixed, made-up data into a folder and print each PNG's SHA-256.

    python tests/draw_figures.py OUT_DIR

tests/test_figures.py runs it natively and under an emulated arm64 and compares the hashes (numpy and
matplotlib only: the arm64 environment has them, no DVC).
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from lenet1 import figures


def made_up_data(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    history = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "train_accuracy": 1 - 0.1 / e,
            "val_loss": 1.2 / e,
            "val_accuracy": 1 - 0.12 / e,
        }
        for e in range(1, 13)
    ]
    actual = rng.integers(0, 10, 500).tolist()
    predicted = [a if rng.random() > 0.05 else int(rng.integers(0, 10)) for a in actual]
    image = lambda: rng.integers(0, 256, (28, 28)).tolist()  # noqa: E731
    wrong = [
        {"label": int(rng.integers(0, 10)), "predicted": int(rng.integers(0, 10)), "image": image()} for _ in range(11)
    ]
    shapes = {"H1": (4, 24, 24), "H2": (4, 12, 12), "H3": (12, 8, 8), "H4": (12, 4, 4), "output": (10,)}
    states = [
        {
            "label": d,
            "image": image(),
            **{k: np.round(np.tanh(rng.normal(size=s)) * 1.7, 6).tolist() for k, s in shapes.items()},
        }
        for d in range(3)
    ]
    return {"history": history, "actual": actual, "predicted": predicted, "wrong": wrong, "states": states}


def draw(out: Path) -> dict[str, str]:
    data = json.loads(json.dumps(made_up_data()))  # the plot stage reads these from JSON
    figures.learning_curves(data["history"], out / "learning_curves.png")
    figures.confusion(data["actual"], data["predicted"], out / "confusion.png")
    figures.misclassified(data["wrong"], out / "misclassified.png")
    figures.feature_maps(data["states"], out / "feature_maps.png")
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(out.glob("*.png"))}


if __name__ == "__main__":
    print(json.dumps(draw(Path(sys.argv[1]))))
