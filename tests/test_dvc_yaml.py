"""dvc.yaml tells the truth: every project file a stage imports is one of its deps.

Otherwise a change to that file would not rerun the stage, and `dvc repro`
would call outputs "up to date" that the current code would not produce.
"""
import ast
import functools
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo

from tests.helpers import ROOT

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def project_imports(module_file: Path, seen: set[Path] | None = None) -> set[Path]:
    """The project's own .py files that ``module_file`` imports, directly or through each other (a package's
    ``__init__.py`` when it holds code), and the C sources (lenet1/engine/build.py compiles lenet1/engine/csrc)."""
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(module_file.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            packages = [ROOT.joinpath(*parts[:end]) / "__init__.py" for end in range(1, len(parts))]
            base = ROOT.joinpath(*parts)
            for path in (*packages, base.with_suffix(".py"), base / "__init__.py"):
                if path.exists() and path.read_text().strip() and path not in seen:
                    seen.add(path)
                    if path == ROOT / "lenet1" / "engine" / "build.py":
                        seen.add(ROOT / "lenet1" / "engine" / "csrc")
                    project_imports(path, seen)
    return seen


def stage_module(stage: dict) -> Path:
    command = stage["cmd"].split()
    assert command[:2] == ["python", "-m"], stage["cmd"]
    return ROOT / (command[2].replace(".", "/") + ".py")


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_imported_project_file_is_a_dependency(name):
    stage = STAGES[name]
    module = stage_module(stage)
    missing, unused = dep_problems({module, *project_imports(module)}, {ROOT / dep for dep in stage.get("deps", [])})
    missing, unused = ([str(path.relative_to(ROOT)) for path in paths] for paths in (missing, unused))
    assert not missing, f"stage {name!r} imports {missing} but dvc.yaml does not list them as deps"
    assert not unused, f"stage {name!r} lists {unused} as deps but does not import them: it would rerun for nothing"


@functools.cache
def dvc_ignore():
    """DVC's own filter of this repository's .dvcignore."""
    with Repo(str(ROOT)) as repo:
        return repo.dvcignore


def dvc_ignores(path: Path) -> bool:
    return dvc_ignore().is_ignored_file(str(path))


def dep_problems(needed: set[Path], declared: set[Path], code: tuple[Path, ...] = (ROOT / "lenet1", ROOT / "stages"),
                 ignored: Callable[[Path], bool] = dvc_ignores) -> tuple[list[Path], list[Path]]:
    """(the needed files no dep covers, the files of the code that deps cover but nothing needs).  A directory
    dep stands for every file in it that DVC hashes (all but what .dvcignore leaves out: bytecode, editors'
    files), so each must be needed; an empty __init__.py is never needed, as it runs nothing."""
    missing = sorted(path for path in needed if not covered(path, declared))
    listed = {path for dep in declared if any(dep.is_relative_to(c) for c in code)
              for path in ([dep] if dep.is_file() else dep.rglob("*"))
              if path.is_file() and not ignored(path)}
    unused = sorted(path for path in listed
                    if not covered(path, needed) and not (path.name == "__init__.py" and not path.read_text().strip()))
    return missing, unused


def covered(path: Path, deps: set[Path]) -> bool:
    """``path`` is in ``deps``, or in a directory that is."""
    return path in deps or any(parent in deps for parent in path.parents)


def test_a_directory_dep_must_be_needed_whole(tmp_path):
    package = tmp_path / "package"
    (package / "csrc").mkdir(parents=True)
    for name, text in [("__init__.py", ""), ("used.py", "x = 1"), ("other.py", "y = 2"), ("notes.txt", "z"),
                       ("csrc/engine.c", "int f;")]:
        (package / name).write_text(text)
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "used.pyc").write_bytes(b"")
    needed = {package / "used.py", package / "csrc", tmp_path / "elsewhere.py"}
    bytecode = lambda path: "__pycache__" in path.parts  # noqa: E731 (what .dvcignore leaves out, for this tree)
    missing, unused = dep_problems(needed, {package}, code=(tmp_path,), ignored=bytecode)
    assert missing == [tmp_path / "elsewhere.py"]
    assert unused == [package / "notes.txt", package / "other.py"]  # not the empty __init__, csrc or the bytecode
    assert dep_problems({package / "used.py"}, {package / "used.py"}, code=(tmp_path,), ignored=bytecode) == ([], [])


def test_the_import_walk_finds_parent_packages(tmp_path):
    # `from lenet1.engine.exact import X` runs lenet1/engine/__init__.py before exact.py.
    module = tmp_path / "m.py"
    module.write_text("from lenet1.engine.exact import Layout\n")
    assert ROOT / "lenet1" / "engine" / "__init__.py" in project_imports(module)


def test_the_import_walk_finds_indirect_imports():
    # stages.train reaches lenet1/engine/probe.py only through lenet1/train.py and lenet1/engine/__init__.py.
    found = project_imports(ROOT / "stages" / "train.py")
    assert ROOT / "lenet1" / "engine" / "probe.py" in found
    assert ROOT / "lenet1" / "engine" / "__init__.py" in found
    assert ROOT / "lenet1" / "pipeline" / "params.py" in found
    assert ROOT / "lenet1" / "pipeline" / "__init__.py" in found  # a package's __init__ runs too
    assert ROOT / "lenet1" / "engine" / "csrc" in found


def test_dvc_parses_our_yaml_with_libyaml_and_gets_the_same_values():
    import ruamel.yaml

    assert ruamel.yaml.__with_libyaml__, "pip install -r requirements.txt: it pins ruamel.yaml.clib"
    for name in ("dvc.yaml", "dvc.lock", "params.yaml"):  # as DVC reads them: typ="safe"
        text = (ROOT / name).read_text()
        assert ruamel.yaml.YAML(typ="safe").load(text) == ruamel.yaml.YAML(typ="safe", pure=True).load(text), name


@pytest.mark.parametrize("name", ["__pycache__/exact.cpython-311.pyc", ".exact.py.swp", "exact.py~", ".#exact.py",
                                  "csrc/.DS_Store"])
def test_a_directory_dep_hashes_code_not_bytecode_or_editor_files(name):
    # .dvcignore: a stray file in lenet1/engine must not change the dep's hash and rerun train and evaluate.
    engine = ROOT / "lenet1" / "engine"
    assert dvc_ignores(engine / name)
    assert not dvc_ignores(engine / "exact.py")
