"""Any picture of one handwritten digit, prepared the way MNIST prepared its digits (LeCun et al. 1998, §III.A).

MNIST's digits were "size normalized to fit in a 20x20 pixel box while preserving their aspect ratio", with
grey levels from anti-aliasing, then "centered in a 28x28 image by computing the center of mass of the
pixels".  So here: the ink is told from the paper by the picture's border (dark ink on light paper or light on
dark), the paper's grain is taken off, the ink's bounding box is scaled to fit 20x20 (Pillow's Lanczos filter,
anti-aliased), and the result placed in 28x28 by its centre of mass.  An MNIST digit comes back as it was
(its box is already 20 pixels long), or nearly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lenet1.data.inputs import fit_box
from lenet1.errors import InputError

BOX, PLANE = 20, 28
MAX_PIXELS = 40_000_000  # a bound checked from the file's header, before any pixel is decoded
FAINTEST_INK = 32  # of 255 above the paper's grain: less is a blank picture


def read_digit(path: Path) -> np.ndarray:
    """The PNG or JPEG at ``path`` as a uint8 28x28 MNIST-style digit (ink high, paper 0)."""
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise InputError(
                    f"{path}: {image.width}x{image.height} pixels, more than {MAX_PIXELS:,}: "
                    "crop or scale the picture down to the digit"
                )
            image.load()
            grey = on_white(image)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Image.DecompressionBombError as err:  # Pillow's own bound, far above ours, also from the header
        raise InputError(f"{path}: more than {MAX_PIXELS:,} pixels ({err}): crop or scale the picture down") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"{path}: not a picture Pillow can read (a PNG or JPEG of one digit): {err}") from None
    return mnist_like(grey, str(path))


def on_white(image: Image.Image) -> np.ndarray:
    """Grey levels 0-255 of any mode, transparent parts as white paper."""
    if image.width == 0 or image.height == 0:
        raise ValueError("an empty picture")
    rgba = image.convert("RGBA")
    paper = Image.new("RGBA", rgba.size, "white")
    return np.asarray(Image.alpha_composite(paper, rgba).convert("L"))


def ink_levels(grey: np.ndarray) -> np.ndarray:
    """0-255 ink, paper 0: inverted where the border (the paper) is light; the paper's level and grain (the
    picture's median and spread: most of a picture of one digit is paper) subtracted; the darkest ink made 255
    (a linear map: an MNIST digit, whose paper is 0 without grain, keeps its levels)."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    ink = grey.astype(np.float64)
    if np.median(border) > 127:
        ink = 255.0 - ink
    paper = np.median(ink)
    grain = 9.0 * np.median(np.abs(ink - paper))  # 6 standard deviations of the paper's noise: none of it passes
    ink = np.clip(ink - paper - grain, 0.0, None)
    return ink * (255.0 / ink.max()) if ink.max() >= FAINTEST_INK else np.zeros_like(ink)


def mnist_like(grey: np.ndarray, name: str = "the picture") -> np.ndarray:
    """Grey levels of a picture of one digit as a uint8 28x28 MNIST digit."""
    ink = ink_levels(grey)
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if len(rows) == 0:
        raise InputError(f"{name}: no ink found (a blank picture, or ink too faint against the paper)")
    box = np.rint(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]).astype(np.uint8)
    return centred(fit_box(box, BOX, "LANCZOS"))


def centred(digit: np.ndarray) -> np.ndarray:
    """``digit`` (at most 28x28) in a 28x28 plane with its centre of mass at the plane's centre, to the pixel."""
    weights = digit.astype(np.float64)
    rows, cols = np.indices(digit.shape)
    centre = PLANE / 2  # MNIST put each centre of mass within half a pixel of (14, 14), in pixel indices
    top = int(np.clip(round(centre - (rows * weights).sum() / weights.sum()), 0, PLANE - digit.shape[0]))
    left = int(np.clip(round(centre - (cols * weights).sum() / weights.sum()), 0, PLANE - digit.shape[1]))
    plane = np.zeros((PLANE, PLANE), dtype=np.uint8)
    plane[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return plane
