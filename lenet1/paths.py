"""Where each stage reads and writes, relative to the repository root (as in dvc.yaml)."""
from pathlib import Path

PARAMS = Path("params.yaml")
RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
MODEL = Path("models/lenet1.pt")
TRAIN_METRICS = Path("metrics/train.json")
TEST_METRICS = Path("metrics/test.json")
HISTORY = Path("plots/train_history.csv")
PREDICTIONS = Path("plots/test_predictions.csv")
MISCLASSIFIED_PNG = Path("plots/misclassified.png")
LOSS_PNG = Path("plots/loss.png")
ACCURACY_PNG = Path("plots/accuracy.png")
