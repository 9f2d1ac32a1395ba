"""Test-set metrics."""

from __future__ import annotations

from typing import Any

import torch


def test_metrics(outputs: torch.Tensor, labels: torch.Tensor, loss: float) -> dict[str, Any]:
    """Accuracy, error rate, loss and per-class accuracy of ``outputs`` (N, 10) against ``labels``."""
    predictions = outputs.argmax(1)
    correct = predictions == labels
    per_class = {}
    for digit in range(outputs.shape[1]):
        members = labels == digit
        per_class[str(digit)] = correct[members].float().mean().item() if members.any() else None
    accuracy = correct.float().mean().item()
    return {
        "accuracy": accuracy,
        "error_rate": 1.0 - accuracy,
        "errors": int((~correct).sum()),
        "samples": len(labels),
        "loss": loss,
        "per_class_accuracy": per_class,
    }


def prediction_rows(labels: torch.Tensor, predictions: torch.Tensor) -> list[dict[str, int]]:
    """One row per test digit, as DVC's confusion-matrix template reads them."""
    return [{"actual": int(a), "predicted": int(p)} for a, p in zip(labels.tolist(), predictions.tolist())]


def unit_states(states: dict[str, torch.Tensor], images: torch.Tensor, labels: torch.Tensor) -> list[dict[str, Any]]:
    """Per digit: its label, its 0-255 image and every layer's unit states (``engine.states``), for the plot stage."""
    return [
        {
            "label": int(label),
            "image": image.tolist(),
            **{name: values[row].tolist() for name, values in states.items()},
        }
        for row, (image, label) in enumerate(zip(images, labels))
    ]


def misclassified_digits(
    images: torch.Tensor, labels: torch.Tensor, predictions: torch.Tensor, limit: int
) -> list[dict[str, Any]]:
    """The first ``limit`` misclassified digits: label, prediction and 0-255 image, for the plot stage."""
    wrong = (predictions != labels).nonzero().flatten()[:limit].tolist()
    return [{"label": int(labels[i]), "predicted": int(predictions[i]), "image": images[i].tolist()} for i in wrong]
