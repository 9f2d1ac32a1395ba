"""Stage plot: the learning curves, the test confusion matrix, the misclassified digits and the feature maps
as PNGs, drawn with matplotlib from the files train and evaluate write (no torch, no model)."""

import csv
import json
from pathlib import Path
from typing import Any

from lenet1.errors import InputError
from lenet1.pipeline import paths
from stages.runner import run


def read(path: Path) -> Any:
    """A CSV's rows (numbers as numbers) or a JSON file's value; a missing or damaged file is one clear error."""
    try:
        text = path.read_text()
        if path.suffix == ".json":
            return json.loads(text)
        rows = list(csv.DictReader(text.splitlines()))
        return [
            {key: float(value) if any(c in value for c in ".eEn") else int(value) for key, value in row.items()}
            for row in rows
        ]  # floats as write_csv writes them: 0.25, 8e-06, nan
    except FileNotFoundError:
        raise InputError(f"{path} is missing: run `dvc repro` (the train and evaluate stages write it)") from None
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is damaged ({err}): run `dvc repro --force train` to write it again") from None


def main() -> None:
    from lenet1 import figures

    history, predictions = read(paths.HISTORY), read(paths.PREDICTIONS)
    figures.learning_curves(history, paths.LEARNING_CURVES_PNG)
    figures.confusion(
        [row["actual"] for row in predictions], [row["predicted"] for row in predictions], paths.CONFUSION_PNG
    )
    figures.misclassified(read(paths.MISCLASSIFIED), paths.MISCLASSIFIED_PNG)
    figures.feature_maps(read(paths.UNIT_STATES), paths.FEATURE_MAPS_PNG)
    print(
        f"plot: wrote {paths.LEARNING_CURVES_PNG}, {paths.CONFUSION_PNG}, {paths.MISCLASSIFIED_PNG}, "
        f"{paths.FEATURE_MAPS_PNG}"
    )


if __name__ == "__main__":
    raise SystemExit(run(main, "plot"))
