"""The prepared splits: from the raw MNIST files to train/val/test files, and from those files to model inputs.

``make_splits`` takes validation digits from MNIST's 60,000 training digits, stratified by class.  The same
``val_size`` and ``seed`` give byte-identical files on any machine: the shuffle comes from torch's seeded CPU
generator (a Mersenne Twister with a fixed algorithm) and ``outputs.save_torch`` writes name-independent bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from lenet1.data import idx, mnist
from lenet1.errors import InputError, MissingInput, load_failure
from lenet1.data.inputs import prepare
from lenet1.outputs import save_torch, write_json
from lenet1.config.data import INPUTS, MNIST_TRAIN_SIZE

# The mean and standard deviation of MNIST's training pixels (scaled to 0..1),
# the usual normalisation (as in PyTorch's MNIST example).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
REBUILD = "rebuild it with `dvc repro -f -s split`"


SPLITS = ("train", "val", "test")


def class_quotas(labels: np.ndarray, total: int) -> np.ndarray:
    """How many of ``total`` to take from each class, proportional to class size.

    Largest-remainder rounding (ties to the lower class) so the quotas add up
    to exactly ``total``.
    """
    counts = np.bincount(labels, minlength=10).astype(np.int64)
    exact = counts * total / counts.sum()
    quotas = np.floor(exact).astype(np.int64)
    shortfall = total - int(quotas.sum())
    by_remainder = sorted(range(len(counts)), key=lambda c: (-(exact[c] - quotas[c]), c))
    quotas[by_remainder[:shortfall]] += 1
    return quotas


def stratified_indices(labels: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (ascending) of the train and validation parts of ``labels`` (none for validation: ``val_size`` 0)."""
    if not 0 <= val_size < len(labels):
        raise ValueError(f"val_size must be between 0 and {len(labels) - 1}, got {val_size}")
    generator = torch.Generator().manual_seed(seed)
    val_parts = []
    for digit, quota in enumerate(class_quotas(labels, val_size)):
        members = np.flatnonzero(labels == digit)
        shuffled = members[torch.randperm(len(members), generator=generator).numpy()]
        val_parts.append(shuffled[:quota])
    val = np.sort(np.concatenate(val_parts))
    train = np.setdiff1d(np.arange(len(labels)), val)
    return train, val


def verify_raw(raw_dir: Path, expected: dict[str, str] = mnist.SHA256) -> None:
    """Check the raw files against their pinned digests, as download did: a file changed since fails here."""
    for name, digest in expected.items():
        path = raw_dir / name
        try:
            got = hashlib.sha256(path.read_bytes()).hexdigest()
        except FileNotFoundError:
            raise MissingInput(f"{path}: not found; run `dvc repro download` first") from None
        if got != digest:
            raise InputError(
                f"{path}: SHA-256 {got}, expected {digest}: the file changed since download; "
                "fetch it again with `dvc repro -f -s download`"
            )


def read_raw(raw_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The MNIST train and test images and labels from the IDX files in ``raw_dir``."""
    data = {}
    for part, (images_name, labels_name) in mnist.FILES.items():
        images = idx.read_images(raw_dir / images_name)
        labels = idx.read_labels(raw_dir / labels_name)
        if len(images) != len(labels):
            raise InputError(
                f"{raw_dir}: {images_name} has {len(images)} images but {labels_name} {len(labels)} labels"
            )
        if labels.max() > 9:
            raise InputError(f"{raw_dir / labels_name}: label {labels.max()} is not a digit 0-9")
        data[part] = (images, labels)
    return data


def split_stats(splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    return {
        name: {
            "size": int(len(labels)),
            "class_counts": {str(d): int(n) for d, n in enumerate(np.bincount(labels, minlength=10))},
        }
        for name, (_, labels) in splits.items()
    }


def make_splits(
    raw_dir: Path, val_size: int, seed: int, kind: str = "mnist28"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """train, val and test images (as input ``kind``) and labels."""
    raw = read_raw(raw_dir)
    images, labels = raw["train"]
    train, val = stratified_indices(labels, val_size, seed)
    splits = {"train": (images[train], labels[train]), "val": (images[val], labels[val]), "test": raw["test"]}
    return {name: (prepare(images, kind), labels) for name, (images, labels) in splits.items()}


def write_splits(splits: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: Path, kind: str = "mnist28") -> None:
    """``<split>.pt`` files ({"images": uint8 (N, 28, 28), "labels": int64 (N,)}, and "input" unless
    mnist28, so that mnist28 files keep their bytes) and ``stats.json``."""
    for name, (images, labels) in splits.items():
        tensors = {
            "images": torch.from_numpy(np.ascontiguousarray(images)),
            "labels": torch.from_numpy(labels.astype(np.int64)),
        }
        if kind != "mnist28":
            tensors["input"] = kind
        save_torch(out_dir / f"{name}.pt", tensors)
    stats = split_stats(splits)
    for name in splits:  # what train and evaluate check before they trust a file (load_split)
        stats[name]["sha256"] = hashlib.sha256((out_dir / f"{name}.pt").read_bytes()).hexdigest()
    write_json(out_dir / "stats.json", stats)


def first_digits(images: torch.Tensor, labels: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` digits of a split (``train.train_subset``; 0 = all of them)."""
    if count > len(labels):
        raise InputError(
            f"train.train_subset is {count}, but the training split has {len(labels)} digits "
            f"({MNIST_TRAIN_SIZE} - split.val_size); set it to at most {len(labels)}, or 0 for all"
        )
    return (images[:count], labels[:count]) if count else (images, labels)


class Digits(NamedTuple):
    images: torch.Tensor  # uint8 (N, 28, 28)
    labels: torch.Tensor  # int64 (N,)
    input: str  # split.input: mnist28 or a 16x16 reading (lenet1.data.inputs)


def verify_split(path: Path) -> None:
    """Check a split file against the SHA-256 the split stage recorded in stats.json beside it: a stage run
    directly (not by DVC, which checks its deps) must not train or evaluate on a file changed since."""
    stats_path = path.parent / "stats.json"
    if not path.exists() or not stats_path.exists():
        raise MissingInput(f"{path if not path.exists() else stats_path}: not found; run `dvc repro split` first")
    try:
        want = json.loads(stats_path.read_text())[path.stem]["sha256"]
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{stats_path}: records no SHA-256 for {path.name}; {REBUILD}") from None
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != want:
        raise InputError(
            f"{path}: SHA-256 {got[:16]}..., but the split stage recorded {want[:16]}... in {stats_path}: "
            f"the file changed since it was written; {REBUILD}"
        )


def load_split(path: Path, may_be_empty: bool = False) -> Digits:
    """The images, labels and input kind of a file written by ``write_splits``, verified (``verify_split``);
    ``may_be_empty``: the validation split, which ``split.val_size: 0`` leaves without digits."""
    verify_split(path)
    try:
        data = torch.load(path, weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which and how to fix it
        raise InputError(f"{path}: not a readable split file ({load_failure(err)}); {REBUILD}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: holds a {type(data).__name__}, not a split; {REBUILD}")
    images, labels = data.get("images"), data.get("labels")
    if (
        not isinstance(images, torch.Tensor)
        or images.dtype != torch.uint8
        or images.dim() != 3
        or images.shape[1:] != (28, 28)
    ):
        raise InputError(f"{path}: 'images' must be a uint8 tensor of shape (N, 28, 28); {REBUILD}")
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
        raise InputError(f"{path}: 'labels' must be an int64 tensor with one label per image; {REBUILD}")
    if len(labels) == 0 and not may_be_empty:
        raise InputError(f"{path}: holds no digits; {REBUILD}")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise InputError(f"{path}: labels must be digits 0-9, found {labels.min()}..{labels.max()}; {REBUILD}")
    kind = data.get("input", "mnist28")
    if kind not in INPUTS:
        raise InputError(f"{path}: unknown input {kind!r}; {REBUILD}")
    return Digits(images, labels, kind)


def to_inputs(images: torch.Tensor, kind: str = "mnist28") -> torch.Tensor:
    """Float32 model inputs of shape (N, 1, 28, 28): mnist28 standardised, the 16x16 readings in [-1, 1]
    (background -1)."""
    # In place: the same operations in the same order (the same bits), but one new buffer, not four
    # (each fresh buffer of the whole training split costs its pages' faults in every train stage).
    inputs = images.to(torch.float32, copy=True)  # a copy even of float input, which the caller keeps
    if kind != "mnist28":
        return inputs.div_(127.5).sub_(1.0).unsqueeze(1)
    return inputs.div_(255.0).sub_(MNIST_MEAN).div_(MNIST_STD).unsqueeze(1)
