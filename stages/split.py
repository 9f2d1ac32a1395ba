"""Stage split: data/raw -> data/prepared/{train,val,test}.pt and stats.json."""

from lenet1.pipeline import paths
from lenet1.config.params import load_section
from stages.runner import finish, run


def main() -> None:
    from lenet1.data.split import make_splits, verify_raw, write_splits
    from lenet1.config.data import SplitParams

    params = load_section(paths.PARAMS, "split", SplitParams)

    verify_raw(paths.RAW_DIR)  # also when run outside DVC, which checks only its own hashes
    splits = make_splits(paths.RAW_DIR, params.val_size, params.seed, params.input)
    write_splits(splits, paths.PREPARED_DIR, params.input)
    sizes = ", ".join(f"{name} {len(labels)}" for name, (_, labels) in splits.items())
    print(f"split: wrote {paths.PREPARED_DIR}/ ({sizes}; input {params.input})")


if __name__ == "__main__":
    finish(run(main, "split"))
