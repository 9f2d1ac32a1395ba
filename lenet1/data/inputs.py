"""The two inputs a split can prepare: MNIST's own 28x28 digits, or the paper's 16x16 digits.

LeCun et al. (1990) fed the network "a 16 by 16 normalized image" centred in
a 28x28 plane, values in [-1, 1].  ``paper16`` rebuilds that from MNIST: each
digit's bounding box scaled to fit 16x16 with its aspect kept (Pillow's
bilinear filter, which averages when shrinking, so anti-aliased; integer
arithmetic on 8-bit images, so the same bytes everywhere), centred in 28x28.
It stays uint8 on disk; ``lenet1.data.split.to_inputs`` maps it to [-1, 1], background -1.
"""
from __future__ import annotations

import numpy as np

from lenet1.pipeline.sections import INPUTS

BOX = 16
PLANE = 28


def to_paper16(image: np.ndarray) -> np.ndarray:
    """One uint8 28x28 digit with its bounding box scaled to fit BOX x BOX, centred in a PLANE x PLANE plane."""
    rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
    plane = np.zeros((PLANE, PLANE), dtype=np.uint8)
    if len(rows) == 0:
        return plane
    box = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    height, width = box.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    from PIL import Image  # here: only paper16 needs Pillow, and the train stage and the probes import this module too

    scaled = np.asarray(Image.fromarray(box).resize(size, Image.Resampling.BILINEAR))
    top, left = (PLANE - scaled.shape[0]) // 2, (PLANE - scaled.shape[1]) // 2
    plane[top:top + scaled.shape[0], left:left + scaled.shape[1]] = scaled
    return plane


def prepare(images: np.ndarray, kind: str) -> np.ndarray:
    """The images of one split as input ``kind`` (see INPUTS)."""
    if kind == "mnist28":
        return images
    if kind == "paper16":
        return np.stack([to_paper16(image) for image in images]) if len(images) else images
    raise ValueError(f"unknown input {kind!r}: expected one of {', '.join(INPUTS)}")
