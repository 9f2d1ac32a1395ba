"""The README's commands are real: every dvc flag exists, every -S names a param with a valid value,
every `python -m` module exists and parses its options; the ones cheap enough run."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lenet1.config.params import ParamsError, validate
from stages.validate import SECTIONS
from tests.helpers import ROOT

BIN = Path(sys.executable).parent


DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "results" / "README.md",
    ROOT / "bench" / "README.md",
]


def readme_commands() -> list[list[str]]:
    """Every shell command in the code blocks of the README and docs/: continuation lines joined, `$ ` and
    comments dropped."""
    text = "\n".join(path.read_text() for path in DOCS)
    commands = []
    for block in re.findall(r"```(?:bash|text)\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                while words and "=" in words[0] and not words[0].startswith("-"):
                    words = words[1:]  # LENET1_THREADS=1 dvc ...
                if words and (words[0] in ("dvc", "python") or words[0].startswith(".venv/")):
                    commands.append(words)
    return commands


COMMANDS = readme_commands()


def test_the_readme_has_commands():
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("words", [c for c in COMMANDS if c[0] == "dvc"], ids=" ".join)
def test_dvc_commands_use_existing_options(words):
    subcommand = [w for w in words[1:3] if not w.startswith("-")]
    if subcommand and subcommand[0] in ("exp", "queue", "plots", "metrics", "params"):
        subcommand = subcommand[:2]
    else:
        subcommand = subcommand[:1]
    help_text = subprocess.run([str(BIN / "dvc"), *subcommand, "--help"], capture_output=True, text=True).stdout
    for flag in (w.split("=")[0] for w in words if w.startswith("-")):
        assert re.search(re.escape(flag) + r"(?![\w-])", help_text), (
            f"{' '.join(words)}: dvc {' '.join(subcommand)} has no {flag}"
        )


@pytest.mark.parametrize("words", [c for c in COMMANDS if "-S" in c], ids=" ".join)
def test_set_params_name_real_keys_with_valid_values(words):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for value in (words[i + 1] for i, w in enumerate(words) if w == "-S"):
        key, _, raw = value.partition("=")
        section, name = key.split(".")
        assert name in params[section], f"{key} is not in params.yaml"
        first = re.sub(r"range\((\d+),.*\)", r"\1", raw).split(",")[0]  # a Hydra sweep: check its first value
        params[section][name] = yaml.safe_load(first)
    try:
        validate(params, SECTIONS, complete=True)
    except ParamsError as err:
        pytest.fail(f"{' '.join(words)}: {err}")


@pytest.mark.parametrize("words", [c for c in COMMANDS if c[:2] == ["python", "-m"]], ids=" ".join)
def test_python_modules_exist_and_parse_their_options(words):
    module = ROOT / (words[2].replace(".", "/") + ".py")
    assert module.exists(), words[2]
    if "argparse" in module.read_text():
        done = subprocess.run([sys.executable, "-m", words[2], "--help"], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        for flag in (w for w in words[3:] if w.startswith("--")):
            assert re.search(re.escape(flag) + r"(?![\w-])", done.stdout), f"{words[2]} has no {flag}"


@pytest.mark.parametrize("words", [c for c in COMMANDS if len(c) > 1 and c[1].startswith("bench/")], ids=" ".join)
def test_bench_scripts_exist_and_parse_their_options(words):
    script = ROOT / words[1]
    assert script.exists(), words[1]
    done = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for flag in (w for w in words[2:] if w.startswith("--")):
        assert re.search(re.escape(flag) + r"(?![\w-])", done.stdout), f"{words[1]} has no {flag}"


def test_the_docs_are_references_not_logs():
    # Each figure names the commit it was measured at; older rounds are git's (bench/README.md's first lines).
    assert len((ROOT / "bench" / "README.md").read_text().splitlines()) <= 120
    words = sorted(set(re.findall(r"\b[0-9a-f]{7,40}\b", "\n".join(path.read_text() for path in DOCS))))
    kinds = subprocess.run(
        ["git", "cat-file", "--batch-check=%(objecttype)"],
        cwd=ROOT,
        input="\n".join(words) + "\n",
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    commits = [word for word, kind in zip(words, kinds) if kind == "commit"]
    assert len(commits) <= 10, f"the docs name {len(commits)} commits: {commits}"


def test_the_readme_reads_in_five_minutes():
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if not line.startswith("![")]
    assert len(lines) <= 180  # pictures aside; the rest belongs in docs/


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_local_links_and_paths_exist(doc):
    text = doc.read_text()
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):  # [text](relative/path)
        assert (doc.parent / target).exists(), f"{doc.name} links to {target}, which does not exist"
    for path in re.findall(r"`((?:lenet1|stages|tests|bench|docs|results)/[\w/.-]+)`", text):
        assert (ROOT / path).exists(), f"{doc.name} names {path}, which does not exist"
