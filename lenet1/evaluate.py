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
