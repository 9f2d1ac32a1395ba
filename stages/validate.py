"""Stage validate: fail fast on any unknown, missing or bad key in params.yaml.

It depends on the whole file, so `dvc exp run -S +train.lrr=0.1` (a typo
that DVC adds as a new key no other stage tracks) still runs this stage and
fails with the key's name.
"""
import sys

from lenet1 import paths
from lenet1.params import load_params
from lenet1.stage import run


def main() -> None:
    load_params(paths.PARAMS)
    print(f"validate: {paths.PARAMS} is valid")


if __name__ == "__main__":
    sys.exit(run(main, "validate"))
