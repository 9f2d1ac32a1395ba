"""Stage evaluate: models/lenet1.pt + the test split -> metrics/test.json, the predictions, and for the plot stage
the misclassified digits and a few digits' unit states."""

from lenet1.pipeline import paths
from lenet1.pipeline.determinism import configure_environment, import_torch, thread_count
from lenet1.config.params import load_section
from stages.runner import finish, run


FEATURE_DIGITS = 3  # test digits whose unit states plots/feature_maps.png draws


def main() -> None:
    threads = thread_count()
    configure_environment(threads)
    import_torch()
    from lenet1.pipeline.checkpoint import load_model
    from lenet1.data.split import load_split, to_inputs
    from lenet1.pipeline.determinism import configure_torch
    from lenet1.engine import make_engine
    from lenet1.evaluate import misclassified_digits, prediction_rows, test_metrics, unit_states
    from lenet1.config.learning import EvaluateParams
    from lenet1.outputs import write_csv, write_json

    config = load_section(paths.PARAMS, "evaluate", EvaluateParams)
    configure_torch(threads)
    model, model_params, engine_name = load_model(paths.MODEL)
    images, labels, kind = load_split(paths.PREPARED_DIR / "test.pt")
    inputs = to_inputs(images, kind)
    # The engine that trained the model (its file says which), so that evaluation is exact where training was.
    engine = make_engine(engine_name, model, model_params["loss"], inputs, labels)
    outputs, loss = engine.evaluate(inputs, labels, config.batch_size)
    metrics = test_metrics(outputs, labels, loss)
    predictions = outputs.argmax(1)
    write_json(paths.TEST_METRICS, metrics)
    write_csv(paths.PREDICTIONS, prediction_rows(labels, predictions))
    states = engine.states(inputs[:FEATURE_DIGITS])
    write_json(paths.UNIT_STATES, unit_states(states, images[:FEATURE_DIGITS], labels[:FEATURE_DIGITS]), indent=None)
    wrong = misclassified_digits(images, labels, predictions, config.max_misclassified)
    write_json(paths.MISCLASSIFIED, wrong, indent=None)
    print(
        f"evaluate: test accuracy {metrics['accuracy']:.2%} ({metrics['errors']} errors in {metrics['samples']}); "
        f"{len(wrong)} of them in {paths.MISCLASSIFIED}"
    )


if __name__ == "__main__":
    finish(run(main, "evaluate"))
