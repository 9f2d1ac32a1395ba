"""The errors we raise on purpose for users: the stages print their message in one line.

Anything else, a ValueError deep in torch or a bug of ours included, keeps
its traceback.
"""


class InputError(ValueError):
    """A bad param, option or input file; the message says what is wrong and how to fix it."""


class MissingInput(InputError, FileNotFoundError):
    """An input file a stage needs does not exist; the message names the stage that makes it."""
