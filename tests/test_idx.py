import gzip
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import shared_dir
from lenet1.data import idx

CANONICAL = Path(__file__).resolve().parents[2] / "shared" / "mnist-canonical"


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)


@pytest.fixture
def labels() -> np.ndarray:
    return np.array([7, 2, 1, 0, 9], dtype=np.uint8)


def test_image_bytes_have_the_idx_layout(images):
    data = idx.encode_images(images)
    assert data[:4] == bytes([0, 0, 8, 3])
    assert [int.from_bytes(data[i : i + 4], "big") for i in (4, 8, 12)] == [5, 28, 28]
    assert data[16:] == images.tobytes()


def test_label_bytes_have_the_idx_layout(labels):
    assert idx.encode_labels(labels) == bytes([0, 0, 8, 1, 0, 0, 0, 5, 7, 2, 1, 0, 9])


def test_round_trip_through_bytes_and_files(tmp_path, images, labels):
    np.testing.assert_array_equal(idx.read_idx(idx.encode_images(images)), images)
    idx.write_images(tmp_path / "img", images)
    idx.write_labels(tmp_path / "lab", labels)
    read = idx.read_images(tmp_path / "img")
    assert read.dtype == np.uint8 and read.shape == (5, 28, 28)
    np.testing.assert_array_equal(read, images)
    np.testing.assert_array_equal(idx.read_labels(str(tmp_path / "lab")), labels)
    read[0, 0, 0] ^= 1  # the result must be an ordinary writable array
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img", "lab"]  # no temporary files left


def test_agrees_with_torchvision_reader(tmp_path, images, labels):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    idx.write_images(tmp_path / "img", images)
    idx.write_labels(tmp_path / "lab", labels)
    np.testing.assert_array_equal(read_image_file(str(tmp_path / "img")).numpy(), idx.read_images(tmp_path / "img"))
    np.testing.assert_array_equal(read_label_file(str(tmp_path / "lab")).numpy(), idx.read_labels(tmp_path / "lab"))


def test_agrees_with_torchvision_on_real_test_set(tmp_path):
    shared_dir()  # a skip on a developer machine without ../shared, a failure in CI
    from torchvision.datasets.mnist import read_image_file, read_label_file

    for name, ours, theirs, count in (
        ("t10k-images-idx3-ubyte", idx.read_images, read_image_file, (10000, 28, 28)),
        ("t10k-labels-idx1-ubyte", idx.read_labels, read_label_file, (10000,)),
    ):
        path = tmp_path / name
        path.write_bytes(gzip.decompress((CANONICAL / f"{name}.gz").read_bytes()))
        array = ours(path)
        assert array.shape == count
        np.testing.assert_array_equal(theirs(str(path)).numpy(), array)


def _image_file() -> bytes:
    return idx.encode_images(np.zeros((2, 28, 28), np.uint8))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00", "shorter than the 4-byte magic"),
        (gzip.compress(b"x" * 20), "decompress it first"),
        (bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + b"abcd", "type code 0x0d"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 2]), "truncated IDX header"),
        (_image_file()[:-1], "truncated: header says shape (2, 28, 28)"),
        (_image_file() + b"\x00", "has trailing bytes"),
        (bytes([0, 0, 8, 0]), "0 dimensions"),
    ],
)
def test_corrupt_data_is_a_value_error_naming_the_file(data, message):
    with pytest.raises(ValueError, match="^some-file: .*") as err:
        idx.read_idx(data, "some-file")
    assert message in str(err.value)


def test_wrong_kind_of_file_is_named(tmp_path, labels):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx.encode_labels(labels))
    with pytest.raises(ValueError, match=f"{path}: magic number 0x00000801 is not 0x00000803"):
        idx.read_images(path)
    with pytest.raises(ValueError, match="is not 0x00000801"):
        idx.read_labels(_image_file(), "labels")


@pytest.mark.parametrize(
    "encode, array, message",
    [
        (idx.encode_images, np.zeros((2, 28, 28), np.int64), "uint8"),
        (idx.encode_images, np.zeros((2, 784), np.uint8), r"shape \(N, rows, cols\)"),
        (idx.encode_labels, np.zeros((2, 1), np.uint8), r"shape \(N,\)"),
        (idx.encode_labels, np.array([256, 1]), "uint8"),
    ],
)
def test_encoding_refuses_what_it_cannot_store_exactly(encode, array, message):
    with pytest.raises(ValueError, match=message):
        encode(array)


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, images):
    path = tmp_path / "img"
    idx.write_images(path, images)
    with pytest.raises(TypeError):
        idx.write_atomic(path, "text, not bytes")  # fails after the temporary file was created
    np.testing.assert_array_equal(idx.read_images(path), images)
    assert [p.name for p in tmp_path.iterdir()] == ["img"]
