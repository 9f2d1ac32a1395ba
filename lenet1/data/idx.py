"""Read and write MNIST's IDX files (unsigned-byte images and labels).

IDX is a big-endian header -- two zero bytes, a type code (0x08 = unsigned
byte), the number of dimensions, then one 32-bit size per dimension --
followed by the raw values.  Only unsigned bytes are supported because that
is all MNIST uses; anything else is a corrupt or foreign file, and every
problem is a ``ValueError`` that names the file and says what is wrong.

numpy only: stages that merely check or convert the data should not pay for
importing torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lenet1.outputs import write_atomic

from lenet1.errors import InputError

IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions: N, rows, columns
LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension: N
UNSIGNED_BYTE = 0x08

Source = bytes | bytearray | memoryview | str | os.PathLike


def _load(source: Source, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "<IDX bytes>"
    path = Path(source)
    return path.read_bytes(), name or str(path)


def read_idx(source: Source, name: str | None = None) -> np.ndarray:
    """Decode an unsigned-byte IDX file (bytes or a path) into a uint8 array.

    ``name`` labels error messages when ``source`` is bytes.
    """
    data, name = _load(source, name)
    if len(data) < 4:
        raise InputError(f"{name}: not an IDX file: {len(data)} bytes, shorter than the 4-byte magic number")
    if data[0] != 0 or data[1] != 0:
        raise InputError(
            f"{name}: not an IDX file: magic number 0x{data[:4].hex()} does not start with two zero bytes"
            " (a gzip file starts 0x1f8b: decompress it first)"
        )
    if data[2] != UNSIGNED_BYTE:
        raise InputError(f"{name}: IDX type code 0x{data[2]:02x} is not 0x08 (unsigned byte), the only type MNIST uses")
    ndim = data[3]
    if ndim == 0:
        raise InputError(f"{name}: IDX header declares 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise InputError(f"{name}: truncated IDX header: {len(data)} bytes, need {header_size} for {ndim} dimensions")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header_size + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        raise InputError(
            f"{name}: {problem}: header says shape {shape}, so {expected:,} bytes, but the file has {len(data):,}"
        )
    # copy: frombuffer over immutable bytes gives a read-only array, which
    # surprises callers that normalise or augment in place.
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def _read_with_magic(source: Source, name: str | None, magic: int, what: str) -> np.ndarray:
    data, name = _load(source, name)
    if len(data) >= 4 and int.from_bytes(data[:4], "big") != magic:
        raise InputError(
            f"{name}: magic number 0x{data[:4].hex()} is not 0x{magic:08x} ({what}); is this the right file?"
        )
    return read_idx(data, name)


def read_images(source: Source, name: str | None = None) -> np.ndarray:
    """Read an IDX image file (magic 0x00000803) as a uint8 array of shape (N, rows, cols)."""
    return _read_with_magic(source, name, IMAGE_MAGIC, "images: N x rows x cols unsigned bytes")


def read_labels(source: Source, name: str | None = None) -> np.ndarray:
    """Read an IDX label file (magic 0x00000801) as a uint8 array of shape (N,)."""
    return _read_with_magic(source, name, LABEL_MAGIC, "labels: N unsigned bytes")


def encode_idx(array: np.ndarray) -> bytes:
    """Encode a uint8 array of any rank as IDX bytes."""
    if array.dtype != np.uint8:
        # A silent cast would wrap 256 to 0 or truncate 0.5 to 0.
        raise ValueError(f"IDX encoding needs uint8 values, got dtype {array.dtype}; convert and range-check first")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX encoding needs 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, UNSIGNED_BYTE, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def encode_images(images: np.ndarray) -> bytes:
    """Encode uint8 images of shape (N, rows, cols) -- (N, 28, 28) for MNIST -- as IDX bytes."""
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, rows, cols), got {images.shape}")
    return encode_idx(images)


def encode_labels(labels: np.ndarray) -> bytes:
    """Encode uint8 labels of shape (N,) as IDX bytes."""
    if labels.ndim != 1:
        raise ValueError(f"labels must have shape (N,), got {labels.shape}")
    return encode_idx(labels)


def write_images(path: str | os.PathLike, images: np.ndarray) -> None:
    """Write uint8 images of shape (N, rows, cols) to an IDX file, atomically."""
    write_atomic(path, encode_images(images))


def write_labels(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Write uint8 labels of shape (N,) to an IDX file, atomically."""
    write_atomic(path, encode_labels(labels))
