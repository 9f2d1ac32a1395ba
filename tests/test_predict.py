"""python -m lenet1.predict: real MNIST test digits, as PNGs and dressed as photos, get what evaluate computes
for them; bad pictures and model files get one line and exit 1."""

import gzip
import json
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from bench.predict_agreement import photo
from lenet1.data import idx
from lenet1.data.handwritten import mnist_like
from lenet1.data.inputs import prepare
from lenet1.data.split import to_inputs
from lenet1.engine import ExactEngine
from lenet1.model import build_model
from lenet1.pipeline.checkpoint import save_model
from lenet1.predict import main, predict
from tests.helpers import ROOT, shared_dir

CHECKED = 1000  # test digits compared; the model trains on others


@pytest.fixture(scope="module")
def digits():
    canonical = shared_dir() / "mnist-canonical"
    images = idx.read_images(gzip.decompress((canonical / "t10k-images-idx3-ubyte.gz").read_bytes()))
    labels = idx.read_labels(gzip.decompress((canonical / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def trained(path, images, labels, kind="mnist28"):
    """A model trained briefly on MNIST test digits 0-5999, saved as the train stage saves it."""
    inputs = to_inputs(torch.from_numpy(prepare(images[:6000].numpy(), kind)), kind)
    model = build_model("full", 1)
    engine = ExactEngine(model, "cross_entropy", inputs[:16], labels[:16])
    for epoch in range(2):
        engine.train_epoch(
            inputs, labels[:6000], torch.randperm(6000, generator=torch.Generator().manual_seed(epoch)), 16, 0.1, 0.0
        )
    save_model(path, model, {"variant": "full", "loss": "cross_entropy"}, 2, engine, kind)
    return engine


@pytest.fixture(scope="module")
def model(tmp_path_factory, digits):
    """The model file and what evaluate computes for test digits 6000-6999: the engine's predictions."""
    images, labels = digits
    path = tmp_path_factory.mktemp("model") / "lenet1.pt"
    engine = trained(path, images, labels)
    checked = images[6000 : 6000 + CHECKED]
    return path, engine.predict(to_inputs(checked), 1000).argmax(1)


def agreement(model_path, pictures, expected) -> float:
    rows, _ = predict(model_path, pictures)
    return float(np.mean([row["digit"] == int(e) for row, e in zip(rows, expected)]))


def test_mnist_digits_as_pngs_predict_what_evaluate_predicted(tmp_path, digits, model):
    path, expected = model
    pictures = []
    for i, image in enumerate(digits[0][6000 : 6000 + CHECKED].numpy()):
        pictures.append(tmp_path / f"{i}.png")
        Image.fromarray(image).save(pictures[-1])
    assert agreement(path, pictures, expected) >= 0.99


def test_the_same_digits_dressed_as_photos_still_agree(tmp_path, digits, model):
    path, expected = model
    rng = np.random.default_rng(0)
    pictures = []
    for i, image in enumerate(digits[0][6000 : 6000 + 300].numpy()):
        pictures.append(tmp_path / f"{i}.jpg")
        photo(image, rng).save(pictures[-1], quality=90)
    assert agreement(path, pictures, expected[:300]) >= 0.95


def test_a_mnist_digit_comes_back_nearly_unchanged(digits):
    images = digits[0][:500].numpy()
    unchanged = [np.abs(mnist_like(image).astype(int) - image).max() <= 8 for image in images]
    assert np.mean(unchanged) >= 0.99
    assert (mnist_like(255 - images[0]) == mnist_like(images[0])).all()  # ink on paper or paper on ink


def test_a_paper16_model_gets_the_splits_preparation(tmp_path, digits):
    images, labels = digits
    trained(tmp_path / "p.pt", images, labels, "paper16")
    Image.fromarray(images[7000].numpy()).save(tmp_path / "d.png")
    _, seen = predict(tmp_path / "p.pt", [tmp_path / "d.png"])
    assert (seen[0] == prepare(mnist_like(images[7000].numpy())[None], "paper16")[0]).all()


def test_json_and_the_picture_of_what_it_saw(tmp_path, digits, model, capsys):
    Image.fromarray(digits[0][6000].numpy()).save(tmp_path / "d.png")
    assert main(["--model", str(model[0]), "--json", "--out", str(tmp_path / "seen.png"), str(tmp_path / "d.png")]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["image"] == str(tmp_path / "d.png") and row["digit"] == int(model[1][0])
    assert len(row["outputs"]) == 10 and abs(sum(row["outputs"]) - 1) < 1e-5  # softmax, for cross-entropy
    assert Image.open(tmp_path / "seen.png").size[0] > 300


def huge_png(path, side: int) -> None:
    """A PNG whose header claims side x side pixels, with no pixel data: decoding it would take side² bytes."""

    def chunk(kind: bytes, data: bytes = b"") -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])  # 8-bit grey
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT") + chunk(b"IEND"))


def bad_model(path) -> None:
    model = build_model("full", 1)
    torch.save(
        {
            "format": 3,
            "engine": "exact",
            "params": {"variant": "huge", "loss": "mse"},
            "state_dict": model.state_dict(),
        },
        path,
    )


CASES = {
    "not an image": (lambda p: p.write_text("hello"), None, "not a picture Pillow can read"),
    "an empty file": (lambda p: p.write_bytes(b""), None, "not a picture Pillow can read"),
    "a blank image": (lambda p: Image.new("L", (60, 40), 250).save(p, format="PNG"), None, "no ink found"),
    "an enormous image": (lambda p: huge_png(p, 8000), None, "8000x8000 pixels, more than 40,000,000"),
    "a decompression bomb": (lambda p: huge_png(p, 200_000), None, "more than 40,000,000"),
    "a missing image": (lambda p: None, None, "no such file"),
    "a missing model": (None, lambda p: None, "not found"),
    "a foreign model": (None, lambda p: p.write_text("weights: none"), "not a weights-only torch file"),
    "an unknown variant": (None, bad_model, "unknown variant 'huge'"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_1(tmp_path, digits, model, case):
    make_picture, make_model, message = CASES[case]
    picture, model_path = tmp_path / "digit.png", model[0]
    if make_picture:
        make_picture(picture)
    else:
        Image.fromarray(digits[0][0].numpy()).save(picture)
    if make_model:
        model_path = tmp_path / "model.pt"
        make_model(model_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lenet1.predict",
            "--model",
            str(model_path),
            "--out",
            str(tmp_path / "seen.png"),
            str(picture),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and result.stdout == "", result
    [line] = result.stderr.splitlines()
    assert line.startswith("predict: error: ") and message in line and "weights_only=False" not in line, line
    assert not (tmp_path / "seen.png").exists()
