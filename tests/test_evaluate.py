import json

import pytest
import torch

from lenet1.evaluate import prediction_rows, test_metrics as compute_test_metrics
from lenet1.data.split import to_inputs
from lenet1.figures import plot_feature_maps, plot_misclassified
from lenet1.model import build_model
from lenet1.pipeline.outputs import write_csv, write_json


def test_metrics_on_a_hand_made_case():
    # predictions: 0, 1, 1, 2 for labels 0, 1, 2, 2 -> one error, on digit 2
    outputs = torch.zeros(4, 10)
    for row, predicted in enumerate([0, 1, 1, 2]):
        outputs[row, predicted] = 1.0
    metrics = compute_test_metrics(outputs, torch.tensor([0, 1, 2, 2]), loss=0.5)
    assert metrics["accuracy"] == 0.75 and metrics["error_rate"] == 0.25 and metrics["errors"] == 1
    assert metrics["per_class_accuracy"]["0"] == 1.0 and metrics["per_class_accuracy"]["2"] == 0.5
    assert metrics["per_class_accuracy"]["7"] is None  # no 7 in the set
    assert metrics["loss"] == 0.5 and metrics["samples"] == 4


def test_prediction_rows():
    assert prediction_rows(torch.tensor([3, 4]), torch.tensor([3, 9])) == [{"actual": 3, "predicted": 3}, {"actual": 4, "predicted": 9}]


def test_misclassified_grid_is_a_png_and_counts_errors(tmp_path):
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    shown = plot_misclassified(images, torch.tensor([1, 2, 3, 4, 5]), torch.tensor([1, 0, 3, 0, 0]), 2, tmp_path / "m.png")
    assert shown == 2
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pngs_and_text_outputs_are_byte_stable(tmp_path):
    history = [{"epoch": 1, "lr": 0.1, "val_accuracy": 0.85}, {"epoch": 2, "lr": 0.05, "val_accuracy": 0.123456789}]
    write_csv(tmp_path / "h.csv", history)
    assert (tmp_path / "h.csv").read_text().splitlines()[2] == "2,0.05,0.123457"  # rounded to 6 digits
    images = (torch.rand(3, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    for name in ("a.png", "b.png"):
        plot_misclassified(images, torch.tensor([1, 2, 3]), torch.tensor([0, 2, 0]), 8, tmp_path / name)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    write_json(tmp_path / "m.json", {"x": 1 / 3, "nested": {"y": [2 / 3]}})
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": 0.333333, "nested": {"y": [0.666667]}}


def png_text_chunks(data: bytes) -> list[bytes]:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG file, read from its chunk structure."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, position = [], 8
    while position < len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            chunks.append(data[position + 8:position + 8 + length])
        position += 12 + length
    return chunks


def test_pngs_carry_no_version_text(tmp_path):
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    plot_misclassified(images, torch.tensor([1, 2]), torch.tensor([0, 0]), 8, tmp_path / "a.png")
    assert png_text_chunks((tmp_path / "a.png").read_bytes()) == []


def test_misclassified_grid_shows_each_wrong_digit_in_grey_levels(tmp_path):
    from PIL import Image

    from lenet1.figures import GAP, LINE

    images = (torch.rand(4, 28, 28, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    plot_misclassified(images, torch.tensor([1, 2, 3, 4]), torch.tensor([1, 0, 3, 0]), 8, tmp_path / "m.png")
    figure = Image.open(tmp_path / "m.png").convert("L")
    scale, gap, top = 2, LINE // 2, 3 * LINE  # figures.plot_misclassified's layout: the title, a line, the mosaic
    for slot, index in enumerate([1, 3]):  # the wrong ones, in order, 0 (white) to 255 (black)
        for row, column in [(0, 0), (5, 17), (27, 27)]:
            x = GAP + scale * (slot * (28 + gap) + gap + column)
            y = top + scale * (gap + row)
            assert figure.getpixel((x, y)) == 255 - int(images[index, row, column]), (slot, row, column)


def test_no_misclassified_digit_gives_a_title_only_figure(tmp_path):
    from PIL import Image

    images = torch.zeros(3, 28, 28, dtype=torch.uint8)
    assert plot_misclassified(images, torch.tensor([1, 2, 3]), torch.tensor([1, 2, 3]), 8, tmp_path / "m.png") == 0
    assert Image.open(tmp_path / "m.png").height < 100


def test_grey_levels_and_output_bars():
    import numpy as np

    from lenet1.figures import BLUE, PANEL, RED, bars, grey

    assert np.asarray(grey(np.array([[-1.0, 0.0, 1.0, 3.0]]), -1.0, 1.0, 1)).tolist() == [[255, 128, 0, 0]]
    assert grey(np.zeros((2, 3)), -1.0, 1.0, 4).size == (12, 8)
    image = bars([0.5, -1.0, 2.0, 0, 0, 0, 0, 0, 0, 0.1])
    row = PANEL // 10
    colours = [{image.getpixel((x, digit * row + row // 2)) for x in range(image.width)} for digit in range(10)]
    assert RED in colours[2] and BLUE not in colours[2]  # the largest output, the prediction
    assert BLUE in colours[0] and BLUE in colours[1] and RED not in colours[1]
    opposite = bars([-2.0, 2.0] + [0.0] * 8)  # equal and opposite: bars of one length, none cut at the edge
    lengths = [sum(opposite.getpixel((x, d * row + row // 2)) == colour for x in range(opposite.width))
               for d, colour in ((0, BLUE), (1, RED))]
    assert lengths[0] == lengths[1] > 40, lengths
    tied = bars([1.0, 0.0, 1.0] + [0.5] * 7)  # a tie for the largest: argmax's first, not both
    reds = [RED in {tied.getpixel((x, d * row + row // 2)) for x in range(tied.width)} for d in range(10)]
    assert reds == [True] + [False] * 9


def test_feature_maps_show_every_layer_and_are_byte_stable(tmp_path):
    model = build_model("paper", 0)
    images = (torch.rand(2, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    for name in ("a.png", "b.png"):
        plot_feature_maps(model.states(to_inputs(images)), images, torch.tensor([3, 7]), tmp_path / name)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    states = model.states(torch.zeros(1, 1, 28, 28))
    assert [tuple(states[k].shape[1:]) for k in ("H1", "H2", "H3", "H4", "output")] == [
        (4, 24, 24), (4, 12, 12), (12, 8, 8), (12, 4, 4), (10,)]


@pytest.mark.parametrize("count, per_row, height, width", [(4, 4, 24, 24), (12, 6, 8, 8), (7, 3, 5, 6), (2, 4, 3, 3)])
def test_tile_lays_images_out_as_torchvision_make_grid(count, per_row, height, width):
    from torchvision.utils import make_grid

    from lenet1.figures import tile

    images = torch.randn(count, 1, height, width, generator=torch.Generator().manual_seed(count))
    expected = make_grid(images, nrow=per_row, padding=1, pad_value=-1.0)[0].numpy()
    assert (tile(images[:, 0].numpy(), per_row, -1.0) == expected).all()
