"""Evaluate's two figures, feature maps and misclassified digits, drawn with Pillow as byte-stable PNGs.

Pillow rather than matplotlib: both figures are grids of grey squares with a few labels, and importing and
laying out matplotlib cost 1.1-1.3 s of a one-epoch experiment (bench/README.md).  The learning curves are
DVC's own plot templates (dvc.yaml's `plots:`), not drawn here."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lenet1.pipeline.outputs import write_atomic

# Pillow's own font, drawn by the FreeType bundled in the pinned wheel, so the text has the same pixels everywhere;
# basic layout, because Pillow's other (Raqm) is used only where the system has libfribidi.
FONT, SMALL_FONT = (ImageFont.load_default(size=size).font_variant(layout_engine=ImageFont.Layout.BASIC)
                    for size in (12, 9))
LINE = 16  # pixels of a line of text
PANEL = 84  # pixels high of each drawing in plot_feature_maps: an input digit at 3x
GAP = 16  # pixels between drawings
BLUE, RED = (31, 119, 180), (214, 39, 40)  # matplotlib's C0 and C3: the outputs, the prediction in red


def save_png(image: Image.Image, path: Path) -> None:
    """Write ``image`` as a PNG, atomically; Pillow puts no date, version or software name in it."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())


def tile(images: Any, per_row: int, pad_value: float, padding: int = 1) -> Any:
    """(N, h, w) images as one (rows, columns) mosaic with ``padding`` between and around, as torchvision's
    ``make_grid`` lays them out; a few numpy lines because importing torchvision costs each stage about 2 s."""
    count, height, width = images.shape
    per_row = min(per_row, count)
    rows = -(-count // per_row)
    padded = np.full((rows * per_row, height + padding, width + padding), pad_value, dtype=np.float32)
    padded[:count, padding:, padding:] = images
    grid = padded.reshape(rows, per_row, height + padding, width + padding).transpose(0, 2, 1, 3)
    return np.pad(grid.reshape(rows * (height + padding), per_row * (width + padding)), ((0, padding), (0, padding)),
                  constant_values=pad_value)


def grey(values: Any, white: float, black: float, scale: int) -> Image.Image:
    """(h, w) ``values`` as grey levels from ``white`` to ``black``, each value a ``scale`` x ``scale`` square."""
    levels = np.clip((np.asarray(values, dtype=np.float32) - white) / (black - white), 0.0, 1.0)
    image = Image.fromarray(np.rint(255.0 - 255.0 * levels).astype(np.uint8))
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def bars(outputs: list[float]) -> Image.Image:
    """The ten outputs as horizontal bars from a zero line, labelled 0-9, the prediction (the first largest, as
    argmax) in red."""
    row, half, labels = PANEL // 10, 48, 14
    image = Image.new("RGB", (labels + 2 * half + 1, PANEL), "white")  # + 1: the zero line's own column
    draw, zero, largest = ImageDraw.Draw(image), labels + half, max(abs(value) for value in outputs) or 1.0
    predicted = outputs.index(max(outputs))
    for digit, value in enumerate(outputs):
        end = zero + round(value / largest * half)
        draw.text((2, digit * row - 1), str(digit), fill="black", font=SMALL_FONT)
        draw.rectangle((min(zero, end), digit * row + 1, max(zero, end), digit * row + row - 2),
                       fill=RED if digit == predicted else BLUE)
    draw.line((zero, 0, zero, PANEL - 1), fill="black")
    return image


def compose(title: str, rows: list[list[tuple[str, Image.Image]]]) -> Image.Image:
    """A figure: ``title`` above rows of labelled drawings, each column as wide as its widest drawing or label."""
    columns = [max(max(image.width, int(FONT.getlength(label))) for label, image in column) for column in zip(*rows)]
    row_height = LINE + max((image.height for row in rows for _, image in row), default=0) + GAP
    width = max(sum(columns) + GAP * (len(columns) + 1), int(FONT.getlength(title)) + 2 * GAP)
    figure = Image.new("RGB", (width, 2 * LINE + row_height * len(rows)), "white")
    draw = ImageDraw.Draw(figure)
    draw.text((GAP, 4), title, fill="black", font=FONT)
    for r, row in enumerate(rows):
        x, y = GAP, 2 * LINE + r * row_height
        for column_width, (label, image) in zip(columns, row):
            draw.text((x, y), label, fill="black", font=FONT)
            figure.paste(image, (x, y + LINE))
            x += column_width + GAP
    return figure


def plot_feature_maps(states: dict[str, Any], images: Any, labels: Any, path: Path) -> None:
    """For a few digits: the input, each layer's maps as grey levels, and the ten outputs, as in the paper's figure.

    ``states`` is ``LeNet1.states`` of the digits: tensors (N, maps, h, w) for H1-H4, (N, 10) outputs.
    Grey levels span tanh's range, -1 (white) to +1 (black), the same for every map.
    """
    layers = [("H1", 4), ("H2", 4), ("H3", 6), ("H4", 6)]  # maps per row of each drawing
    rows = []
    for row in range(len(images)):
        drawings = [(f"input ({int(labels[row])})", grey(images[row].numpy(), 0.0, 255.0, PANEL // images.shape[-1]))]
        for name, per_row in layers:
            maps = states[name][row].detach().numpy()  # (maps, h, w)
            mosaic = tile(maps, per_row, -1.0)
            drawings.append((f"{name}: {len(maps)} maps {tuple(maps.shape[1:])}",
                             grey(mosaic, -1.0, 1.0, PANEL // mosaic.shape[0])))
        drawings.append(("outputs", bars(states["output"][row].detach().tolist())))
        rows.append(drawings)
    save_png(compose("What LeNet-1 computes: unit states per layer for test digits", rows), path)


def plot_misclassified(images: Any, labels: Any, predictions: Any, limit: int, path: Path) -> int:
    """A PNG grid of the first ``limit`` misclassified digits labelled 'true -> predicted'; returns how many."""
    wrong = (predictions != labels).nonzero().flatten()[:limit].tolist()
    columns, scale, side = 8, 2, images.shape[-1]
    gap = LINE // scale  # room above each digit for its label
    drawings = []
    if wrong:
        mosaic = grey(tile(images[wrong].numpy(), columns, 0.0, gap), 0.0, 255.0, scale)
        draw = ImageDraw.Draw(mosaic)
        for slot, index in enumerate(wrong):  # each label in the gap above its digit
            row, column = divmod(slot, columns)
            xy = scale * (column * (side + gap) + gap), scale * row * (side + gap)
            draw.text(xy, f"{int(labels[index])} -> {int(predictions[index])}", fill=0, font=FONT)
        drawings.append(mosaic)
    title = f"Misclassified test digits (true -> predicted), first {len(wrong)}"
    save_png(compose(title, [[("", drawing)] for drawing in drawings]), path)
    return len(wrong)
