"""Where each stage reads and writes, relative to the repository root (as in dvc.yaml)."""
from pathlib import Path

PARAMS = Path("params.yaml")
RAW_DIR = Path("data/raw")
# The four canonical MNIST files in RAW_DIR, uncompressed IDX.
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
RAW_FILES = {"train": (TRAIN_IMAGES, TRAIN_LABELS), "test": (TEST_IMAGES, TEST_LABELS)}
PREPARED_DIR = Path("data/prepared")
MODEL = Path("models/lenet1.pt")
TRAIN_METRICS = Path("metrics/train.json")
TEST_METRICS = Path("metrics/test.json")
HISTORY = Path("plots/train_history.csv")
PREDICTIONS = Path("plots/test_predictions.csv")
MISCLASSIFIED_PNG = Path("plots/misclassified.png")
LOSS_PNG = Path("plots/loss.png")
ACCURACY_PNG = Path("plots/accuracy.png")
