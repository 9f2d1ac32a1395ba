"""Stage validate: fail fast on any unknown, missing or bad key in params.yaml.

It depends on the whole file, so `dvc exp run -S +train.lrr=0.1` (a typo
that DVC adds as a new key no other stage tracks) still runs this stage and
fails with the key's name.  Its output, data/params.ok, is a dependency of
the download stage and so upstream of every stage: DVC runs it, and stops on
a bad param, before it removes any other stage's outputs.  The file's content
is the same for every valid params.yaml, so a param change does not by itself
rerun the stages after it.
"""

import sys

from lenet1.pipeline import paths
from lenet1.outputs import write_atomic
from lenet1.config.params import ParamsError, read_params, validate
from lenet1.config.data import DownloadParams, SplitParams
from lenet1.config.learning import EvaluateParams, TrainParams, across_sections
from stages.runner import run

# Every section of params.yaml (lenet1/config/).
SECTIONS = {"download": DownloadParams, "split": SplitParams, "train": TrainParams, "evaluate": EvaluateParams}


def main() -> None:
    errors = across_sections(validate(read_params(paths.PARAMS), SECTIONS, str(paths.PARAMS), complete=True))
    if errors:
        raise ParamsError("\n".join(f"{paths.PARAMS}: {error}" for error in errors))
    write_atomic(paths.PARAMS_OK, b"params.yaml is valid\n")
    print(f"validate: {paths.PARAMS} is valid")


if __name__ == "__main__":
    sys.exit(run(main, "validate"))
