"""Stage plot: plots/train_history.csv -> plots/loss.png and plots/accuracy.png."""
import sys

from lenet1.pipeline import paths
from stages.runner import run


def main() -> None:
    from lenet1.pipeline.figures import plot_curves, read_history

    history = read_history(paths.HISTORY)
    plot_curves(history, "loss", "LeNet-1 loss per epoch", paths.LOSS_PNG)
    plot_curves(history, "accuracy", "LeNet-1 accuracy per epoch", paths.ACCURACY_PNG)
    print(f"plot: wrote {paths.LOSS_PNG} and {paths.ACCURACY_PNG}")


if __name__ == "__main__":
    sys.exit(run(main, "plot"))
