"""Write stage outputs atomically and byte-stably.

A reader (or DVC) sees the old file or the whole new one, never a part; and
the same content always gives the same bytes, so ``dvc.lock`` hashes match
across machines.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path
from typing import Any

METRIC_DIGITS = 6  # floats in metrics JSON, so the text is stable too


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``.

    The temporary file lives beside the target because ``os.replace`` is only
    atomic within one file system; parent directories are created, and
    temporary files of this target that a killed run left behind are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a run killed mid-write
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # os.open rather than mkstemp: mkstemp's mode 0600 would survive the
    # rename, and the published file should get the usual umask permissions.
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:  # disk full, read-only: name the output, not the hidden temporary file
        raise OSError(err.errno, err.strerror, str(path)) from err


def rounded(value: Any, digits: int = METRIC_DIGITS) -> Any:
    """``value`` with every float rounded to ``digits`` decimals, recursively."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(item, digits) for item in value]
    return value


def write_json(path: str | os.PathLike, value: Any, indent: int | None = 2) -> None:
    """Write ``value`` as JSON (indented, or with ``indent=None`` compact) with floats rounded to ``METRIC_DIGITS``."""
    write_atomic(path, (json.dumps(rounded(value), indent=indent) + "\n").encode())


def write_csv(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Write rows with the same keys as CSV, floats rounded to ``METRIC_DIGITS``."""
    if not rows:
        raise ValueError(f"{path}: no rows to write")
    header = list(rows[0])
    lines = [",".join(header)]
    lines += [",".join(str(rounded(row[key])) for key in header) for row in rows]
    write_atomic(path, ("\n".join(lines) + "\n").encode())


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` with bytes that do not depend on the file name.

    torch.save names the records inside its zip after the file it writes to;
    saving to memory names them ``archive`` always, so a temporary file name
    cannot leak into the bytes.
    """
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(path, buffer.getvalue())
