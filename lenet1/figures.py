"""The pipeline's pictures, drawn with matplotlib (Agg) from the data files the earlier stages write.

Byte-stable: the same data give the same PNG bytes on every machine the bit-exact promise covers.  So the
PNGs carry no software or date (``metadata``), text is matplotlib's bundled DejaVu Sans drawn by the FreeType
in its pinned wheel, and every drawing is the same on x86-64 and arm64 (tests/test_figures.py compares them
under emulation).  No torch here: the plot stage reads numbers, not models.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from lenet1.outputs import write_atomic

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 9,
    "savefig.dpi": 100,
    "figure.dpi": 100,
    "image.interpolation": "nearest",
}
LAYERS = {"H1": 2, "H2": 2, "H3": 4, "H4": 4}  # maps per row of each layer's mosaic in the feature-map figure


def save(figure: plt.Figure, path: Path) -> None:
    """Write ``figure`` as a PNG, atomically, with no software name or date in it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(figure)
    write_atomic(path, buffer.getvalue())


def grid(
    ax: plt.Axes,
    images: np.ndarray,
    per_row: int,
    limits: tuple[float, float],
    gap: float = 1.0,
    labels: list[str] | None = None,
) -> None:
    """(N, h, w) images in rows of ``per_row`` on one axes, ``gap`` pixels apart, grey levels from ``limits[0]``
    (white) to ``limits[1]`` (black); each ``labels`` entry in the gap above its image."""
    count, height, width = images.shape
    top = gap + (9 if labels else 0)  # pixels above each image: its label's room
    for slot, image in enumerate(images):
        row, column = divmod(slot, per_row)
        x, y = column * (width + gap), row * (height + top) + top
        ax.imshow(image, cmap="gray_r", vmin=limits[0], vmax=limits[1], extent=(x, x + width, y + height, y))
        if labels:
            ax.text(x + width / 2, y - 4.5, labels[slot], ha="center", va="center", fontsize=8)
    rows = -(-count // per_row)
    ax.set_xlim(-gap, min(count, per_row) * (width + gap))
    ax.set_ylim(rows * (height + top), 0)
    ax.set_axis_off()


def output_bars(ax: plt.Axes, outputs: list[float]) -> None:
    """The ten outputs as bars, 0 at the top, the prediction (argmax's first) in red."""
    predicted = int(np.argmax(outputs))
    ax.barh(range(10), outputs, color=["C3" if index == predicted else "C0" for index in range(10)])
    ax.set_yticks(range(10))
    ax.invert_yaxis()


def learning_curves(history: list[dict[str, float]], path: Path) -> None:
    """Loss and accuracy per epoch, training beside validation (the split has none when ``split.val_size`` is 0)."""
    epochs = [row["epoch"] for row in history]
    with plt.style.context("default"), plt.rc_context(STYLE):
        figure, axes = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
        for ax, metric in zip(axes, ("loss", "accuracy")):
            for split, style in (("train", "-o"), ("val", "-s")):
                if f"{split}_{metric}" in history[0]:
                    label = "training" if split == "train" else "validation"
                    ax.plot(epochs, [row[f"{split}_{metric}"] for row in history], style, markersize=3, label=label)
            ax.set_xlabel("epoch")
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
            ax.legend()
        axes[0].set_title("Loss per epoch")
        axes[1].set_title("Accuracy per epoch")
        save(figure, path)


def confusion(actual: list[int], predicted: list[int], path: Path) -> None:
    """The test confusion matrix: counts, coloured by each true digit's share."""
    counts = np.zeros((10, 10), dtype=np.int64)
    np.add.at(counts, (np.asarray(actual), np.asarray(predicted)), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    with plt.style.context("default"), plt.rc_context(STYLE):
        figure, ax = plt.subplots(figsize=(5.2, 4.6), layout="constrained")
        ax.imshow(np.sqrt(shares), cmap="Blues", vmin=0, vmax=1)  # sqrt: the few errors still show
        for (row, column), count in np.ndenumerate(counts):
            if count:
                ax.text(
                    column,
                    row,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if shares[row, column] > 0.5 else "black",
                )
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"Test confusion matrix: {len(actual) - int(np.trace(counts))} errors in {len(actual)}")
        save(figure, path)


def misclassified(digits: list[dict[str, Any]], path: Path) -> None:
    """Misclassified test digits (0-255 grey levels, ink high), each labelled 'true → predicted'."""
    columns = 8
    rows = -(-len(digits) // columns)
    with plt.style.context("default"), plt.rc_context(STYLE):
        figure, ax = plt.subplots(
            figsize=(max(0.8 * min(len(digits), columns), 4.2), 1.05 * rows + 0.5), layout="constrained"
        )
        if digits:
            grid(
                ax,
                np.asarray([digit["image"] for digit in digits]),
                columns,
                (0, 255),
                labels=[f"{digit['label']} → {digit['predicted']}" for digit in digits],
            )
        ax.set_axis_off()
        ax.set_title(
            f"Misclassified test digits (true → predicted): {len(digits)}" if digits else "No misclassified test digit"
        )
        save(figure, path)


def feature_maps(digits: list[dict[str, Any]], path: Path) -> None:
    """For a few test digits: the input, each layer's maps (tanh's -1 white to +1 black) and the ten outputs."""
    columns = 2 + len(LAYERS)
    with plt.style.context("default"), plt.rc_context(STYLE):
        # Fixed margins, not constrained layout, which measures a hundred images' extents at every draw.
        figure, axes = plt.subplots(
            len(digits),
            columns,
            figsize=(2 * columns, 2.1 * len(digits)),
            squeeze=False,
            gridspec_kw=dict(
                left=0.01,
                right=0.99,
                top=1 - 0.6 / (2.1 * len(digits)),
                bottom=0.3 / (2.1 * len(digits)),
                wspace=0.15,
                hspace=0.4,
            ),
        )
        figure.suptitle("What LeNet-1 computes: unit states per layer for test digits")
        for row, digit in zip(axes, digits):
            row[0].imshow(np.asarray(digit["image"]), cmap="gray_r", vmin=0, vmax=255)
            row[0].set_title(f"input (label {digit['label']})")
            for ax, (layer, per_row) in zip(row[1:], LAYERS.items()):
                maps = np.asarray(digit[layer], dtype=np.float32)
                grid(ax, maps, per_row, (-1, 1), gap=max(1, maps.shape[1] / 8))
                ax.set_title(f"{layer}: {len(maps)} maps {maps.shape[1]}x{maps.shape[2]}")
            for ax in row[:-1]:
                ax.set_axis_off()
            output_bars(row[-1], digit["output"])
            row[-1].axvline(0, color="black", linewidth=0.8)
            row[-1].set_title("outputs")
        save(figure, path)


def predictions(rows: list[dict[str, Any]], digits: np.ndarray, path: Path) -> None:
    """For each image ``lenet1.predict`` read: the 28x28 input the network saw beside its ten outputs."""
    with plt.style.context("default"), plt.rc_context(STYLE):
        figure, axes = plt.subplots(
            len(rows), 2, figsize=(5.5, 2.0 * len(rows)), layout="constrained", squeeze=False, width_ratios=(1, 1.6)
        )
        for (picture, bars), row, digit in zip(axes, rows, digits):
            picture.imshow(digit, cmap="gray_r", vmin=0, vmax=255)
            picture.set_title(Path(row["image"]).name)
            picture.set_axis_off()
            output_bars(bars, row["outputs"])
            bars.set_title(f"predicted {row['digit']}")
        save(figure, path)
