"""Compiling the exact engine (``csrc/``) once per machine, source and compiler, into a verified cache.

The library goes to ``$LENET1_CACHE`` (default ``$XDG_CACHE_HOME/lenet1-dvc`` or ``~/.cache/lenet1-dvc``),
named by a hash of the sources, the compiler command, its version and the flags, with the SHA-256 of
the built file beside it: a damaged file (a crash or a full disk while it was written) is rebuilt, never
loaded (loading a truncated shared library can kill the process with a bus error).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from collections.abc import Iterator

from lenet1.errors import InputError

SOURCES = Path(__file__).with_name("csrc")  # engine.c and the headers it includes
SOURCE = SOURCES / "engine.c"
DARWIN = platform.system() == "Darwin"
# -ffp-contract=off: no fused multiply-add, which would round once where the C code rounds twice.
COMMON_FLAGS = ("-O3", "-std=gnu11", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-Wno-psabi")
# Linux: no C library headers or startup files (csrc/platform.h says why); macOS links its libSystem as usual.
FLAGS = (*COMMON_FLAGS, "-dynamiclib") if DARWIN else (*COMMON_FLAGS, "-shared", "-nostdlib")
LIBRARIES = () if DARWIN else ("-lgcc",)  # x86-64's choice of instruction set at load time (target_clones)
# Tests set ("-DLENET1_BASELINE_ONLY",): x86-64's baseline (SSE2) code only, no AVX2 or AVX-512 copies.
EXTRA_FLAGS: tuple[str, ...] = ()
BUILD_PREFIX = "build-"  # temporary folders in the cache: build-<pid>-<random>
QUERY_SECONDS, COMPILE_SECONDS = 60, 600  # a compiler that answers -dumpmachine or compiles no sooner is hung


class CompilerError(InputError):
    """No working C compiler for this machine, or it failed on the source."""


def compiler() -> list[str]:
    """$CC (which may carry options) if set, else cc, else the Debian cross compiler for this machine's
    architecture (an emulated arm64 Python on an x86-64 host runs the host's cc)."""
    machine = platform.machine()
    if os.environ.get("CC"):
        command = shlex.split(os.environ["CC"])
        if not command or shutil.which(command[0]) is None or not _targets(command, machine):
            raise CompilerError(
                f"CC={os.environ['CC']!r} is not a C compiler for {machine} on this PATH: fix CC or unset it to use cc"
            )
        return command
    for command in (["cc"], [f"{machine}-linux-gnu-gcc"], ["clang"]):
        if shutil.which(command[0]) is not None and _targets(command, machine):
            return command
    raise CompilerError(
        f"deterministic mode's exact engine needs a C compiler for {machine} (cc, {machine}-linux-gnu-gcc or clang: "
        "not found, failing or for another architecture): install one (Debian/Ubuntu: `sudo apt install gcc`) or set CC"
    )


def _targets(command: list[str], machine: str) -> bool:
    target = _run([*command, "-dumpmachine"], QUERY_SECONDS)
    aliases = {"arm64": "aarch64", "aarch64": "arm64"}
    return target.returncode == 0 and target.stdout.strip().startswith((machine, aliases.get(machine, machine)))


def _run(command: list[str], seconds: float) -> subprocess.CompletedProcess:
    """Run the compiler in a process group of its own, so that on a hang its children end with it."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        try:
            out, err = process.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise CompilerError(
                f"the C compiler {shlex.join(command[:1])} did not finish within {seconds} s, so it "
                "and its processes were ended: fix it, or set CC to another"
            ) from None
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lenet1-dvc"
    return Path(os.environ.get("LENET1_CACHE") or default)


def library(flags: tuple[str, ...] = ()) -> ctypes.CDLL:
    """The engine compiled for this machine (with EXTRA_FLAGS and ``flags``), built on first use and kept in
    cache_dir()."""
    return build((*EXTRA_FLAGS, *flags))


def prepare(flag_sets: list[tuple[str, ...]]) -> None:
    """Compile those of these builds (each with EXTRA_FLAGS) that the cache lacks, side by side, one compiler per
    CPU: a first run on a new machine waits for the slowest build, not for their sum."""
    missing = [
        flags
        for flags in dict.fromkeys((*EXTRA_FLAGS, *flags) for flags in flag_sets)
        if not _verified(_planned(flags)[2])
    ]
    if missing:
        with _announced(len(missing)), ThreadPoolExecutor(min(len(missing), len(os.sched_getaffinity(0)))) as pool:
            list(pool.map(_ensure, missing))


@contextlib.contextmanager
def _announced(builds: int) -> Iterator[None]:
    """A first compile takes seconds: say so, and how long it took."""
    print(
        f"engine: compiling the exact engine for this machine ({builds} build{'s' * (builds > 1)}, once: cached "
        f"in {cache_dir()})",
        file=sys.stderr,
        flush=True,
    )
    start = time.monotonic()
    yield
    print(f"engine: compiled in {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)


@functools.cache
def _planned(extra_flags: tuple[str, ...]) -> tuple[list[str], tuple[str, ...], Path]:
    """The compiler, the flags and the cached library's path (named by everything that makes its bytes)."""
    command, flags = compiler(), (*FLAGS, *extra_flags)
    version = _run([*command, "--version"], QUERY_SECONDS).stdout
    texts = [path.read_text() for path in sorted(SOURCES.glob("*.[ch]"))]
    key = hashlib.sha256(
        "\0".join([*texts, *command, *flags, *LIBRARIES, version, platform.machine()]).encode()
    ).hexdigest()
    return command, flags, cache_dir() / f"engine-{key[:16]}.so"


@functools.cache
def build(extra_flags: tuple[str, ...]) -> ctypes.CDLL:
    path = _planned(extra_flags)[2]
    if not _verified(path):
        with _announced(1):
            _ensure(extra_flags)
    try:
        return ctypes.CDLL(str(path))
    except OSError as err:
        raise _unusable_cache(err) from None


def _ensure(extra_flags: tuple[str, ...]) -> None:
    """The build in the cache, compiled unless it is there whole."""
    command, flags, path = _planned(extra_flags)
    try:
        if not _verified(path):
            _compile(command, flags, path)
    except OSError as err:
        raise _unusable_cache(err) from None


def _unusable_cache(err: OSError) -> CompilerError:
    return CompilerError(
        f"the exact engine's library in the cache {cache_dir()} cannot be built or loaded ({err}): "
        "check that the folder is writable, or point LENET1_CACHE at another"
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verified(path: Path) -> bool:
    """Whether the cached library is whole: its SHA-256 is the one recorded when it was built."""
    try:
        return path.read_bytes() != b"" and Path(f"{path}.sha256").read_text().strip() == _digest(path)
    except OSError:
        return False


def _remove_abandoned_builds(cache: Path) -> None:
    """Temporary build folders whose process is gone (killed while compiling)."""
    for folder in cache.glob(f"{BUILD_PREFIX}*"):
        pid = folder.name.split("-")[1]
        alive = pid.isdigit() and Path(f"/proc/{pid}").exists() if Path("/proc").is_dir() else True
        if not alive:
            shutil.rmtree(folder, ignore_errors=True)


def _compile(command: list[str], flags: tuple[str, ...], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(path.parent)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f"{BUILD_PREFIX}{os.getpid()}-") as tmp:
        built = Path(tmp) / path.name
        result = _run([*command, *flags, str(SOURCE), "-o", str(built), *LIBRARIES], COMPILE_SECONDS)
        if result.returncode != 0:
            raise CompilerError(f"{shlex.join(command)} failed on {SOURCE}:\n{result.stderr.strip()}")
        try:
            ctypes.CDLL(str(built))  # a compiler that exits 0 but writes junk is caught before the cache keeps it
        except OSError as err:
            raise CompilerError(
                f"{shlex.join(command)} built an unloadable library from {SOURCE} ({err}): "
                "fix the compiler or set CC to another"
            ) from None
        digest = Path(tmp) / f"{path.name}.sha256"
        digest.write_text(_digest(built) + "\n")
        os.replace(built, path)  # atomic: a process running in parallel never loads a half-written file
        os.replace(digest, f"{path}.sha256")
