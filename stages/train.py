"""Stage train: data/prepared -> models/lenet1.pt, metrics/train.json, plots/train_history.csv,
metrics/platform.json."""

from dataclasses import asdict

from lenet1.pipeline import paths
from lenet1.pipeline.determinism import (
    configure_environment,
    import_torch,
    platform_note,
    platform_record,
    thread_count,
)
from lenet1.config.params import load_section
from stages.runner import finish, run


def main() -> None:
    threads = thread_count()
    configure_environment(threads)  # before `import torch`, which reads the thread variables
    import_torch()
    from lenet1.data.split import first_digits, load_split, to_inputs
    from lenet1.pipeline.determinism import configure_torch
    from lenet1.pipeline.checkpoint import save_model
    from lenet1.model import count_parameters
    from lenet1.outputs import write_csv, write_json
    from lenet1.config.learning import EvaluateParams, TrainParams
    from lenet1.train import Split, fit

    config = load_section(paths.PARAMS, "train", TrainParams)
    evaluation = load_section(paths.PARAMS, "evaluate", EvaluateParams)
    configure_torch(threads)
    if config.deterministic and platform_note():
        print(f"train: warning: {platform_note()}", flush=True)
    images, labels, kind = load_split(paths.PREPARED_DIR / "train.pt")
    images, labels = first_digits(images, labels, config.train_subset)
    train = Split(to_inputs(images, kind), labels)
    val_images, val_labels, kind = load_split(paths.PREPARED_DIR / "val.pt", may_be_empty=True)
    val = Split(to_inputs(val_images, kind), val_labels)
    print(
        f"train: LeNet-1 '{config.variant}' on {len(labels)} digits, {config.epochs} epochs, "
        f"batch {config.batch_size}, lr {config.lr} ({config.schedule}), "
        f"{threads} threads, {'exact engine' if config.deterministic else 'stock PyTorch'}",
        flush=True,
    )
    result = fit(config, train, val, eval_batch_size=evaluation.batch_size, log=lambda line: print(line, flush=True))
    best = result.history[result.best_epoch - 1]
    save_model(paths.MODEL, result.model, asdict(config), result.best_epoch, result.engine, kind)
    write_csv(paths.HISTORY, result.history)
    write_json(paths.PLATFORM, platform_record(config.deterministic, threads))
    validated = "val_accuracy" in best  # split.val_size: 0 leaves none, and the last epoch is kept
    write_json(
        paths.TRAIN_METRICS,
        {
            "best_epoch": result.best_epoch,
            **(
                {"val_accuracy": best["val_accuracy"], "val_loss": best["val_loss"]}
                if validated
                else {"selected": "last epoch"}
            ),
            "train_accuracy": best["train_accuracy"],
            "train_loss": best["train_loss"],
            "parameters": count_parameters(result.model),
        },
    )
    kept = (
        f"best validation accuracy {best['val_accuracy']:.2%} at epoch {result.best_epoch}"
        if validated
        else f"no validation split: kept the last epoch, {result.best_epoch}"
    )
    print(f"train: {kept}; {result.seconds:.1f}s training; wrote {paths.MODEL}", flush=True)


if __name__ == "__main__":
    finish(run(main, "train"))
