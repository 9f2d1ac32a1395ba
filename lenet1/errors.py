"""The errors we raise on purpose for users: the stages print their message in one line.

Anything else, a ValueError deep in torch or a bug of ours included, keeps
its traceback.
"""


class InputError(ValueError):
    """A bad param, option or input file; the message says what is wrong and how to fix it."""


class MissingInput(InputError, FileNotFoundError):
    """An input file a stage needs does not exist; the message names the stage that makes it."""


def load_failure(err: BaseException) -> str:
    """Why torch.load refused a file, in one line, without torch's advice to retry with weights_only=False:
    that would run whatever code the file carries."""
    text = str(err).strip()
    if "weights_only" in text or "Weights only" in text:
        return "not a weights-only torch file: damaged, foreign, or carrying code, which a safe load refuses"
    return text.splitlines()[0] if text else type(err).__name__
