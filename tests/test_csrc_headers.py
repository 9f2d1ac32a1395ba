"""Each of the engine's C headers compiles on its own: it includes what it uses, so it can be read (and
reused) without knowing which file engine.c includes before it."""

import shutil
import subprocess

import pytest

from lenet1.engine import build, libraries

HEADERS = sorted(path.name for path in build.SOURCES.glob("*.h"))
# The plain include, and the macros build.py's callers pass: the group widths and the x86-64 target choice.
DEFINES = [(), libraries.NARROW_FLAGS, libraries.AVX512_FLAGS, ("-DLENET1_BASELINE_ONLY",)]
# A header's static functions go unused when it is compiled alone; -Wno-psabi as build.py compiles.
WARNINGS = ("-Wall", "-Werror", "-Wno-psabi", "-Wno-unused-function")


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler, cc")
@pytest.mark.parametrize("header", HEADERS)
def test_header_compiles_alone(header):
    for defines in DEFINES:
        done = subprocess.run(
            ["cc", "-fsyntax-only", "-std=gnu11", *WARNINGS, *defines, f"-I{build.SOURCES}", "-x", "c", "-"],
            input=f'#include "{header}"\n',
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{header} with {defines or 'no -D'}:\n{done.stderr}"
