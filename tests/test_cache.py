"""The compiled engine's cache can be damaged, killed mid-build or misconfigured: never a crash, always one line.

Each case runs in a fresh process (the build is cached per process), with LENET1_CACHE in a temporary folder.
"""

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

LOAD = "from lenet1.engine.build import library; library(); print('loaded')"


def load(cache, **env):
    return subprocess.run(
        [sys.executable, "-c", LOAD],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "LENET1_CACHE": str(cache), **env},
    )


def test_a_truncated_library_is_rebuilt_not_loaded(tmp_path):
    first = load(tmp_path)
    assert first.returncode == 0
    said = first.stderr.splitlines()  # a first compile takes seconds: it says so, and how long it took
    assert said[0].startswith("engine: compiling the exact engine") and said[-1].startswith("engine: compiled in "), (
        said
    )
    assert load(tmp_path).stderr == ""  # cached: nothing to say
    [built] = tmp_path.glob("engine-*.so")
    size = built.stat().st_size
    os.truncate(built, 30000)  # loading this crashed every later run with a bus error (exit 135)
    result = load(tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "loaded", result.stderr
    assert built.stat().st_size == size


def test_a_build_killed_mid_compilation_leaves_nothing_behind(tmp_path):
    abandoned = tmp_path / "build-999999999-x"  # no process has this id: its compiler was killed
    abandoned.mkdir()
    (abandoned / "engine-0.so").write_bytes(b"half")
    assert load(tmp_path).returncode == 0
    assert not abandoned.exists()
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".sha256", ".so"]


def test_a_cache_that_cannot_be_written_names_the_cache_and_lenet1_cache(tmp_path):
    cache = tmp_path / "a-file"
    cache.write_text("")
    result = load(cache)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert f"the cache {cache}" in last and "LENET1_CACHE" in last, last


def test_a_compiler_that_exits_0_but_writes_junk_is_named(tmp_path):
    junk = tmp_path / "junk-cc"
    junk.write_text(
        '#!/bin/sh\nfor a; do case "$a" in -dumpmachine) uname -m; exit 0;; '
        "--version) echo junk 1; exit 0;; esac; done\n"
        'while [ "$1" != "-o" ]; do shift; done; echo junk > "$2"\n'
    )
    junk.chmod(junk.stat().st_mode | stat.S_IEXEC)
    result = load(tmp_path / "cache", CC=str(junk))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "built an unloadable library" in last and "set CC" in last, last
    assert not list((tmp_path / "cache").glob("engine-*"))  # nothing cached


def ended(pid: int) -> bool:
    """Whether the process is gone or a zombie (killed, not yet reaped by whoever adopted it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_a_hanging_compiler_is_ended_with_its_children_in_one_line(tmp_path):
    hung = tmp_path / "hung-cc"
    hung.write_text(
        '#!/bin/sh\nfor a; do case "$a" in -dumpmachine) uname -m; exit 0;; '
        "--version) echo hung 1; exit 0;; esac; done\n"
        f"sleep 300 & echo $! > {tmp_path}/child; wait\n"
    )
    hung.chmod(hung.stat().st_mode | stat.S_IEXEC)
    code = "import lenet1.engine.build as b; b.COMPILE_SECONDS = 2; " + LOAD
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from stages.runner import run; import sys; sys.exit(run(lambda: exec({code!r}), 'train'))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LENET1_CACHE": str(tmp_path / "cache"), "CC": str(hung)},
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    said, line = result.stderr.strip().splitlines()  # what it started, then why it stopped
    assert said.startswith("engine: compiling the exact engine"), said
    assert line.startswith("train: error: ") and "did not finish within 2 s" in line and "set CC" in line, line
    child = (tmp_path / "child").read_text().strip()
    assert ended(int(child))  # the compiler's own child ended with it
    assert not list((tmp_path / "cache").glob("engine-*"))
