"""Matplotlib figures saved as byte-stable PNGs: the learning curves and a shared saver."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display in CI or in `dvc repro`
import matplotlib.pyplot as plt  # noqa: E402

from lenet1.outputs import write_atomic  # noqa: E402
from lenet1.errors import InputError, MissingInput  # noqa: E402


def save_figure(figure: Any, path: Path) -> None:
    """Save ``figure`` as PNG, atomically, without the metadata that varies between runs."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    write_atomic(path, buffer.getvalue())


def plot_curves(history: list[dict[str, Any]], metric: str, title: str, path: Path) -> None:
    """Train vs validation ``metric`` ("loss" or "acc") per epoch."""
    epochs = [row["epoch"] for row in history]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(epochs, [row[f"train_{metric}"] for row in history], marker="o", label="train")
    axis.plot(epochs, [row[f"val_{metric}"] for row in history], marker="o", label="validation")
    axis.set_xlabel("epoch")
    axis.set_ylabel(metric if metric == "loss" else "accuracy")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    save_figure(figure, path)


def read_history(path: Path) -> list[dict[str, Any]]:
    """The per-epoch rows written by the train stage."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise MissingInput(f"{path}: not found; run `dvc repro train` first") from None
    if not rows:
        raise InputError(f"{path}: no epochs recorded; rerun training with `dvc repro -f -s train`")
    return [{key: (int(value) if key == "epoch" else float(value)) for key, value in row.items()} for row in rows]
