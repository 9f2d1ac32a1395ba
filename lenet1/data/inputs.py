"""The inputs a split can prepare: MNIST's own 28x28 digits, or a reading of the paper's 16x16 digits.

LeCun et al. (1990) fed the network "a 16 by 16 normalized image" centred in a 28x28 plane, values in
[-1, 1]; the 1998 comparison says LeNet-1's digits were "down-sampled to 16x16 pixels and centered in the 28x28
input layer", and no more.  Two readings of that, rebuilt from MNIST (whose digits fit a 20x20 box, centred by
their centre of mass in 28x28):

- ``paper16``: each digit's bounding box scaled to fit 16x16 with its aspect kept (Pillow's bilinear filter,
  which averages when shrinking), centred in 28x28 by its box;
- ``scaled16-<filter>``: MNIST's whole 28x28 digit scaled to 22x22 (by 0.79: the 20x20 box becomes about
  16x16) with the named filter (area: the mean of the pixels each new one covers; bilinear; Lanczos), centred in
  28x28, so the centre of mass stays where MNIST put it.

Integer arithmetic on 8-bit images, so the same bytes everywhere.  Stored as uint8; ``lenet1.data.split.to_inputs``
maps every 16x16 reading to [-1, 1], background -1.
"""

from __future__ import annotations

import numpy as np

from lenet1.config.data import INPUTS

BOX = 16
PLANE = 28


# Pillow is imported where an image is scaled: only the 16x16 readings need it, and the train stage and the
# probes import this module too.
SCALED16_FILTERS = {"scaled16-area": "BOX", "scaled16-bilinear": "BILINEAR", "scaled16-lanczos": "LANCZOS"}


def fit_box(box: np.ndarray, side: int, resample: str) -> np.ndarray:
    """uint8 ``box`` scaled to fit ``side`` x ``side``, its aspect kept, with Pillow's ``resample`` filter."""
    from PIL import Image

    scale = side / max(box.shape)
    size = (max(1, round(box.shape[1] * scale)), max(1, round(box.shape[0] * scale)))
    return np.asarray(Image.fromarray(box).resize(size, Image.Resampling[resample]))


def to_paper16(image: np.ndarray) -> np.ndarray:
    """One uint8 28x28 digit with its bounding box scaled to fit BOX x BOX, centred in a PLANE x PLANE plane."""
    rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
    plane = np.zeros((PLANE, PLANE), dtype=np.uint8)
    if len(rows) == 0:
        return plane
    scaled = fit_box(image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], BOX, "BILINEAR")
    top, left = (PLANE - scaled.shape[0]) // 2, (PLANE - scaled.shape[1]) // 2
    plane[top : top + scaled.shape[0], left : left + scaled.shape[1]] = scaled
    return plane


SCALED = 22  # the whole 28x28 digit scaled to this: MNIST's 20x20 box to 20 * 22 / 28 = 15.7


def to_scaled16(image: np.ndarray, resample: str) -> np.ndarray:
    """One uint8 28x28 MNIST digit scaled as a whole to SCALED x SCALED with ``resample``, centred in 28x28."""
    plane = np.zeros((PLANE, PLANE), dtype=np.uint8)
    start = (PLANE - SCALED) // 2
    plane[start : start + SCALED, start : start + SCALED] = fit_box(image, SCALED, resample)
    return plane


def prepare(images: np.ndarray, kind: str) -> np.ndarray:
    """The images of one split as input ``kind`` (see INPUTS)."""
    if kind == "mnist28":
        return images
    if kind == "paper16":
        return np.stack([to_paper16(image) for image in images]) if len(images) else images
    if kind in SCALED16_FILTERS:
        filter_name = SCALED16_FILTERS[kind]
        return np.stack([to_scaled16(image, filter_name) for image in images]) if len(images) else images
    raise ValueError(f"unknown input {kind!r}: expected one of {', '.join(INPUTS)}")
