"""Run a stage's main function with the error handling every stage shares."""
from __future__ import annotations

import sys
from typing import Callable

from lenet1.params import ParamsError


def run(main: Callable[[], None], stage: str, errors: tuple[type[BaseException], ...] = ()) -> int:
    """Call ``main``; turn a params or data problem into one clear message; return the exit status.

    0 done; 2 invalid params; 1 a missing or corrupt input, or one of the
    stage's own expected ``errors``.  Unexpected errors keep their traceback:
    they are bugs, not user mistakes.
    """
    try:
        main()
    except ParamsError as err:
        print(f"{stage}: error: invalid parameters:\n{err}\nFix params.yaml (or the --set-param value) and rerun.",
              file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, *errors) as err:
        print(f"{stage}: error: {err}", file=sys.stderr)
        return 1
    return 0
