"""Run a stage's main function with the error handling every stage shares."""

from __future__ import annotations

import os
import signal
import sys
from typing import NoReturn
from collections.abc import Callable

from lenet1.errors import InputError
from lenet1.config.params import ParamsError


class Interrupted(BaseException):
    """A termination signal arrived: raised where the stage was, so that every `with` block and
    temporary file is cleaned up on the way out (Python's default for SIGTERM skips all of that).  A BaseException,
    like KeyboardInterrupt, so that a handler of Exception (one download source failing) does not swallow it."""


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def run(main: Callable[[], None], stage: str, errors: tuple[type[BaseException], ...] = ()) -> int:
    """Call ``main``; turn a params or data problem into one clear message; return the exit status.

    0 done; 2 invalid params; 1 a missing or corrupt input (``InputError``), a
    local write that failed (the path and the cause), or one of the stage's own
    expected ``errors``; 128 + the signal's number when Ctrl-C (SIGINT), SIGTERM or SIGHUP stopped it.  Anything
    else keeps its traceback: a bug, not a user mistake.
    """
    for kind in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(kind, _interrupt)
    try:
        main()
    except (Interrupted, KeyboardInterrupt) as err:
        name = str(err) if isinstance(err, Interrupted) else "SIGINT"
        print(
            f"{stage}: interrupted by {name}: its temporary files are removed and nothing half-written is left",
            file=sys.stderr,
        )
        return 128 + signal.Signals[name].value
    except ParamsError as err:
        print(
            f"{stage}: error: invalid parameters:\n{err}\nFix params.yaml (or the --set-param value) and rerun.",
            file=sys.stderr,
        )
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


def finish(status: int) -> NoReturn:
    """Exit with ``status`` at once, for a stage that imported torch: its outputs are written and closed by now,
    and Python's own teardown of torch would only add to the stage's time."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
