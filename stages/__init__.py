"""The DVC stages' entry points (``python -m stages.NAME``).

dvc.yaml's commands call ``python``: outside the project's venv that is another Python, which lacks the
pinned packages.  Say so in one line, before any stage imports them, rather than with a traceback."""

import importlib.util
import sys

_NEEDED = ("yaml", "numpy", "torch", "matplotlib")  # requirements.txt's packages the stages import
_missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
if _missing:
    sys.exit(
        f"stages: error: {sys.executable} has no {', '.join(_missing)}: it is not the project's venv. "
        "Activate it (`. .venv/bin/activate`, after `python3 -m venv .venv && .venv/bin/pip install -r "
        "requirements.txt`) and rerun, as the README says."
    )
