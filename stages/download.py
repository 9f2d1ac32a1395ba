"""DVC stage `download`: put the four uncompressed MNIST IDX files in data/raw/.

    python -m stages.download                 # sources from params.yaml (download.sources, download.timeout)
    python -m stages.download --from-dir DIR  # no network: take the files (NAME or NAME.gz) from DIR

Exit status: 0 done, 1 some file could not be obtained (the message says what
was tried and how to supply the files), 2 params.yaml is invalid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lenet1.data import download
from lenet1.pipeline import paths
from lenet1.config.params import load_section
from lenet1.config.data import DownloadParams
from stages.runner import run

DEFAULT_OUT = paths.RAW_DIR


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.download", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--from-dir",
        type=Path,
        metavar="DIR",
        help="take the MNIST files from DIR (uncompressed, or .gz as on the mirrors) instead of the network",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default: {DEFAULT_OUT})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the stage; return its exit status (see the module docstring)."""
    return run(lambda: fetch(parse_args(argv)), "download", errors=(download.DownloadError,))


def fetch(args: argparse.Namespace) -> None:
    params = load_section(paths.PARAMS, "download", DownloadParams)
    if args.from_dir is not None:
        download.import_mnist(args.from_dir, args.out)
    else:
        download.fetch_mnist(args.out, params.sources, params.timeout)


if __name__ == "__main__":
    sys.exit(main())
