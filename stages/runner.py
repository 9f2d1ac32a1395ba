"""Run a stage's main function with the error handling every stage shares."""
from __future__ import annotations

import sys
from typing import Callable

from lenet1.errors import InputError
from lenet1.pipeline.params import ParamsError


def run(main: Callable[[], None], stage: str, errors: tuple[type[BaseException], ...] = ()) -> int:
    """Call ``main``; turn a params or data problem into one clear message; return the exit status.

    0 done; 2 invalid params; 1 a missing or corrupt input (``InputError``), a
    local write that failed (the path and the cause), or one of the stage's own
    expected ``errors``.  Anything else keeps its traceback: a bug, not a user mistake.
    """
    try:
        main()
    except ParamsError as err:
        print(f"{stage}: error: invalid parameters:\n{err}\nFix params.yaml (or the --set-param value) and rerun.",
              file=sys.stderr)
        return 2
    except (InputError, *errors) as err:
        print(f"{stage}: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a full disk, a read-only directory, a directory where a file should be: name it
        if err.filename is None:
            raise
        print(f"{stage}: error: cannot read or write {err.filename}: {err.strerror}", file=sys.stderr)
        return 1
    return 0
