"""Stage evaluate: models/lenet1.pt + the test split -> metrics/test.json, predictions, misclassified and feature-map PNGs."""
import sys

from lenet1 import paths
from lenet1.determinism import configure_environment, thread_count
from lenet1.params import load_section
from stages.runner import run


FEATURE_DIGITS = 3  # test digits drawn layer by layer in plots/feature_maps.png


def main() -> None:
    threads = thread_count()
    configure_environment(threads)
    from lenet1.data import load_split, to_inputs
    from lenet1.determinism import configure_torch
    from lenet1.evaluate import EvaluateParams, prediction_rows, test_metrics
    from lenet1.figures import plot_feature_maps, plot_misclassified
    from lenet1.model import load_model
    from lenet1.outputs import write_csv, write_json
    from lenet1.train import TrainParams, make_loss, predict

    config = load_section(paths.PARAMS, "evaluate", EvaluateParams)
    deterministic = load_section(paths.PARAMS, "train", TrainParams).deterministic
    configure_torch(threads)
    # The numerics the model was trained with, so that evaluation is exact where training was.
    model, model_params = load_model(paths.MODEL, exact=deterministic)
    images, labels, kind = load_split(paths.PREPARED_DIR / "test.pt")
    outputs = predict(model, to_inputs(images, kind), config.batch_size)
    loss = make_loss(model_params["loss"], model)(outputs, labels).item()
    metrics = test_metrics(outputs, labels, loss)
    predictions = outputs.argmax(1)
    write_json(paths.TEST_METRICS, metrics)
    write_csv(paths.PREDICTIONS, prediction_rows(labels, predictions))
    digits, digit_labels = images[:FEATURE_DIGITS], labels[:FEATURE_DIGITS]
    plot_feature_maps(model.states(to_inputs(digits, kind)), digits, digit_labels, paths.FEATURE_MAPS_PNG)
    shown = plot_misclassified(images, labels, predictions, config.max_misclassified, paths.MISCLASSIFIED_PNG)
    print(f"evaluate: test accuracy {metrics['accuracy']:.2%} ({metrics['errors']} errors in {metrics['samples']}); "
          f"{shown} of them in {paths.MISCLASSIFIED_PNG}")


if __name__ == "__main__":
    sys.exit(run(main, "evaluate"))
