"""Run a stage's main function with the error handling every stage shares."""
from __future__ import annotations

import sys
from typing import Callable

from lenet1.params import ParamsError


def run(main: Callable[[], None]) -> None:
    """Call ``main``; turn a params or data problem into one clear message and a non-zero exit.

    Unexpected errors keep their traceback: they are bugs, not user mistakes.
    """
    try:
        main()
    except ParamsError as err:
        print(f"error: invalid parameters:\n{err}\nFix params.yaml (or the --set-param value) and rerun.", file=sys.stderr)
        sys.exit(2)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
