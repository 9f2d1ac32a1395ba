"""All the project's matplotlib: feature maps and misclassified digits, saved as byte-stable PNGs.

The learning curves are DVC's own plot templates (dvc.yaml's `plots:`), not drawn here."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display in CI or in `dvc repro`
import matplotlib.pyplot as plt  # noqa: E402

from lenet1.pipeline.outputs import write_atomic  # noqa: E402


def save_figure(figure: Any, path: Path) -> None:
    """Save ``figure`` as PNG, atomically, without the metadata that varies between runs."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    write_atomic(path, buffer.getvalue())


def tile(images: Any, per_row: int, pad_value: float, padding: int = 1) -> Any:
    """(N, h, w) images as one (rows, columns) mosaic with ``padding`` between and around, as torchvision's
    ``make_grid`` lays them out; a few numpy lines because importing torchvision costs each stage about 2 s."""
    import numpy as np

    count, height, width = images.shape
    per_row = min(per_row, count)
    rows = -(-count // per_row)
    padded = np.full((rows * per_row, height + padding, width + padding), pad_value, dtype=np.float32)
    padded[:count, padding:, padding:] = images
    grid = padded.reshape(rows, per_row, height + padding, width + padding).transpose(0, 2, 1, 3)
    return np.pad(grid.reshape(rows * (height + padding), per_row * (width + padding)), ((0, padding), (0, padding)),
                  constant_values=pad_value)


def plot_feature_maps(states: dict[str, Any], images: Any, labels: Any, path: Path) -> None:
    """For a few digits: the input, each layer's maps as grey levels, and the ten outputs, as in the paper's figure.

    ``states`` is ``LeNet1.states`` of the digits: tensors (N, maps, h, w) for H1-H4, (N, 10) outputs.
    Grey levels span tanh's range, -1 (white) to +1 (black), the same for every map.
    """
    layers = [("H1", 4), ("H2", 4), ("H3", 6), ("H4", 6)]  # maps per row of each panel
    figure, axes = plt.subplots(len(images), 2 + len(layers), figsize=(13, 1.9 * len(images)), squeeze=False,
                                gridspec_kw={"width_ratios": [1, 2.4, 1.4, 2.4, 1.4, 1.6]})
    for row, axis_row in enumerate(axes):
        axis_row[0].imshow(images[row].numpy(), cmap="gray_r", vmin=0, vmax=255)
        axis_row[0].set_title(f"input ({int(labels[row])})", fontsize=9)
        for axis, (name, per_row) in zip(axis_row[1:], layers):
            maps = states[name][row].detach().numpy()  # (maps, h, w)
            axis.imshow(tile(maps, per_row, -1.0), cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
            axis.set_title(f"{name}: {len(maps)} maps {tuple(maps.shape[1:])}", fontsize=9)
        outputs = states["output"][row].detach()
        axis_row[-1].barh(range(10), outputs.numpy(), color=["C3" if d == int(outputs.argmax()) else "C0" for d in range(10)])
        axis_row[-1].set_yticks(range(10))
        axis_row[-1].invert_yaxis()
        axis_row[-1].set_title("outputs", fontsize=9)
        for axis in axis_row[:-1]:
            axis.axis("off")
    figure.suptitle("What LeNet-1 computes: unit states per layer for test digits", fontsize=10)
    # Fixed margins: tight_layout measures every text first, a third of the figure's time in each experiment.
    figure.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.06, wspace=0.15, hspace=0.45)
    save_figure(figure, path)


def plot_misclassified(images: Any, labels: Any, predictions: Any, limit: int, path: Path) -> int:
    """A PNG grid of the first ``limit`` misclassified digits titled 'true -> predicted'; returns how many."""
    wrong = (predictions != labels).nonzero().flatten()[:limit].tolist()
    columns, gap, side = 8, 12, images.shape[-1]  # gap: room above each digit for its label
    rows = max(1, -(-len(wrong) // columns))
    # One mosaic and one text per digit: 64 axes would cost seconds to lay out and draw.
    mosaic = tile(images[wrong].numpy(), columns, 0.0, gap) if wrong else None
    figure, axis = plt.subplots(figsize=(columns * 1.1, rows * 1.1 + 0.5))
    axis.axis("off")
    if mosaic is not None:
        axis.imshow(mosaic, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    for slot, index in enumerate(wrong):
        x, y = (slot % columns) * (side + gap) + gap + side / 2, (slot // columns) * (side + gap) + gap - 2
        axis.text(x, y, f"{int(labels[index])} \u2192 {int(predictions[index])}", fontsize=9, ha="center", va="bottom")
    axis.set_title(f"Misclassified test digits (true \u2192 predicted), first {len(wrong)}", fontsize=10)
    figure.subplots_adjust(left=0.01, right=0.99, top=1 - 0.45 / figure.get_figheight(), bottom=0.01)  # as above
    save_figure(figure, path)
    return len(wrong)
