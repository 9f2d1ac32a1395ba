import json

import pytest
import torch

from lenet1.evaluate import plot_misclassified, prediction_rows, test_metrics as compute_test_metrics
from lenet1.figures import plot_curves, read_history
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
    assert prediction_rows(torch.tensor([3, 4]), torch.tensor([3, 9])) == [{"actual": 3, "predicted": 3}, {"actual": 4, "predicted": 9}]


def test_misclassified_grid_is_a_png_and_counts_errors(tmp_path):
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    shown = plot_misclassified(images, torch.tensor([1, 2, 3, 4, 5]), torch.tensor([1, 0, 3, 0, 0]), 2, tmp_path / "m.png")
    assert shown == 2
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pngs_and_text_outputs_are_byte_stable(tmp_path):
    history = [{"epoch": 1, "lr": 0.1, "train_loss": 0.5, "train_acc": 0.8, "val_loss": 0.4, "val_acc": 0.85},
               {"epoch": 2, "lr": 0.05, "train_loss": 0.3, "train_acc": 0.9, "val_loss": 0.35, "val_acc": 0.123456789}]
    write_csv(tmp_path / "h.csv", history)
    assert read_history(tmp_path / "h.csv")[1]["val_acc"] == 0.123457  # rounded to 6 digits
    plot_curves(history, "loss", "t", tmp_path / "a.png")
    plot_curves(history, "loss", "t", tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    write_json(tmp_path / "m.json", {"x": 1 / 3, "nested": {"y": [2 / 3]}})
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": 0.333333, "nested": {"y": [0.666667]}}


def test_missing_history_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro train"):
        read_history(tmp_path / "none.csv")
