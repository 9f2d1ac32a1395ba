"""Where each stage reads and writes, relative to the repository root (as in dvc.yaml)."""
from pathlib import Path

PARAMS = Path("params.yaml")
PARAMS_OK = Path("data/params.ok")  # written by validate once params.yaml passes
RAW_DIR = Path("data/raw")
# The four canonical MNIST files in RAW_DIR, uncompressed IDX.
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
RAW_FILES = {"train": (TRAIN_IMAGES, TRAIN_LABELS), "test": (TEST_IMAGES, TEST_LABELS)}
# SHA-256 of the uncompressed canonical files: download publishes only these bytes, split checks them again.
RAW_SHA256 = {
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# Their sizes in bytes: a gzip file or a download that would give more is refused before it is decompressed whole.
RAW_SIZES = {TRAIN_IMAGES: 47_040_016, TRAIN_LABELS: 60_008, TEST_IMAGES: 7_840_016, TEST_LABELS: 10_008}
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
