"""dvc.yaml tells the truth: every project file a stage imports is one of its deps.

Otherwise a change to that file would not rerun the stage, and `dvc repro`
would call outputs "up to date" that the current code would not produce.
"""
import ast
from pathlib import Path

import pytest
import yaml

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
            base = ROOT / name.replace(".", "/")
            for path in (base.with_suffix(".py"), base / "__init__.py"):
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
    needed = {module, *project_imports(module)}
    declared = {ROOT / dep for dep in stage.get("deps", [])}
    missing = sorted(str(path.relative_to(ROOT)) for path in needed if not covered(path, declared))
    assert not missing, f"stage {name!r} imports {missing} but dvc.yaml does not list them as deps"
    # A directory dep stands for every file in it, so each of its Python files must be imported too.
    listed = {path for dep in declared for path in ([dep] if dep.suffix == ".py" else dep.rglob("*.py"))}
    unused = sorted(str(path.relative_to(ROOT)) for path in listed - needed)
    assert not unused, f"stage {name!r} lists {unused} as deps but does not import them: it would rerun for nothing"


def covered(path: Path, declared: set[Path]) -> bool:
    """``path`` is a dep, or in a directory that is one."""
    return path in declared or any(parent in declared for parent in path.parents)


def test_a_directory_dep_must_be_imported_whole(tmp_path):
    # lenet1/pipeline as a dep of validate would rerun it when checkpoint.py changes, which it never imports.
    pipeline = ROOT / "lenet1" / "pipeline"
    assert covered(pipeline / "params.py", {pipeline}) and not covered(pipeline / "params.py", {ROOT / "lenet1" / "data"})
    needed = {module for module in project_imports(ROOT / "stages" / "validate.py")}
    assert {path for path in pipeline.rglob("*.py")} - needed  # so the stage's test would call it unused


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
