"""Where each stage reads and writes, relative to the repository root (as in dvc.yaml)."""

from pathlib import Path

PARAMS = Path("params.yaml")
PARAMS_OK = Path("data/params.ok")  # written by validate once params.yaml passes
RAW_DIR = Path("data/raw")  # the MNIST files of lenet1.data.mnist
PREPARED_DIR = Path("data/prepared")
MODEL = Path("models/lenet1.pt")
TRAIN_METRICS = Path("metrics/train.json")
TEST_METRICS = Path("metrics/test.json")
# Where the train stage last ran: in git, not in dvc.lock (it differs between machines that give the same bits).
PLATFORM = Path("metrics/platform.json")
HISTORY = Path("plots/train_history.csv")
PREDICTIONS = Path("plots/test_predictions.csv")
# What evaluate hands the plot stage: the unit states of a few test digits, the misclassified digits.
UNIT_STATES = Path("data/figures/unit_states.json")
MISCLASSIFIED = Path("data/figures/misclassified.json")
LEARNING_CURVES_PNG = Path("plots/learning_curves.png")
CONFUSION_PNG = Path("plots/confusion.png")
MISCLASSIFIED_PNG = Path("plots/misclassified.png")
FEATURE_MAPS_PNG = Path("plots/feature_maps.png")
