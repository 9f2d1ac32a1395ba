import json

import torch

from lenet1.evaluate import misclassified_digits, prediction_rows, test_metrics as compute_test_metrics, unit_states
from lenet1.data.split import to_inputs
from lenet1.model import build_model
from lenet1.outputs import write_csv, write_json


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
    assert prediction_rows(torch.tensor([3, 4]), torch.tensor([3, 9])) == [
        {"actual": 3, "predicted": 3},
        {"actual": 4, "predicted": 9},
    ]


def test_misclassified_digits_are_the_first_wrong_ones_with_their_images():
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    wrong = misclassified_digits(images, torch.tensor([1, 2, 3, 4, 5]), torch.tensor([1, 0, 3, 0, 0]), 2)
    assert [(d["label"], d["predicted"]) for d in wrong] == [(2, 0), (4, 0)]
    assert wrong[1]["image"] == images[3].tolist()


def test_unit_states_keep_every_layer_of_each_digit(tmp_path):
    model = build_model("paper", 0)
    images = (torch.rand(2, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    states = model.states(to_inputs(images))
    digits = unit_states(states, images, torch.tensor([3, 7]))
    assert [d["label"] for d in digits] == [3, 7] and digits[0]["image"] == images[0].tolist()
    assert [len(digits[1][k]) for k in ("H1", "H2", "H3", "H4", "output")] == [4, 4, 12, 12, 10]
    for name in ("a.json", "b.json"):  # as evaluate writes them: compact, rounded, byte-stable
        write_json(tmp_path / name, digits, indent=None)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert json.loads((tmp_path / "a.json").read_text())[1]["H4"][0][0][0] == round(states["H4"][1, 0, 0, 0].item(), 6)


def test_text_outputs_are_byte_stable(tmp_path):
    history = [{"epoch": 1, "lr": 0.1, "val_accuracy": 0.85}, {"epoch": 2, "lr": 0.05, "val_accuracy": 0.123456789}]
    write_csv(tmp_path / "h.csv", history)
    assert (tmp_path / "h.csv").read_text().splitlines()[2] == "2,0.05,0.123457"  # rounded to 6 digits
    write_json(tmp_path / "m.json", {"x": 1 / 3, "nested": {"y": [2 / 3]}})
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": 0.333333, "nested": {"y": [0.666667]}}
