"""dvc.yaml tells the truth: every project file a stage imports is one of its deps (lenet1.tools.deps).

Otherwise a change to that file would not rerun the stage, and `dvc repro`
would call outputs "up to date" that the current code would not produce.
"""

import functools
from pathlib import Path

import pytest
import yaml

from lenet1.tools import deps
from tests.helpers import ROOT

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@functools.cache
def dvc_ignore():
    return deps.dvc_ignored(ROOT)


def dvc_ignores(path: Path) -> bool:
    return dvc_ignore()(path)


@functools.cache
def generated() -> dict[str, list[str]]:
    return deps.generated_deps(ROOT, dvc_ignores)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_imported_project_file_is_a_dependency(name):
    declared = [dep for dep in STAGES[name].get("deps", []) if dep.split("/")[0] in deps.CODE]
    assert declared == generated()[name], "dvc.yaml's code deps are stale: python -m lenet1.tools.deps --write"


def test_the_deps_tool_checks_and_rewrites_only_the_code_deps():
    text = (ROOT / "dvc.yaml").read_text()
    stale = text.replace("      - lenet1/errors.py\n", "", 1).replace(
        "      - stages/runner.py\n", "      - stages/runner.py\n      - lenet1/loss.py\n", 1
    )
    assert stale != text
    assert deps.rewrite(stale, generated()) == text  # data deps, params and comments kept line for line
    assert deps.rewrite(text, generated()) == text
    assert deps.differences(stale, generated()) == [
        "stage validate: missing ['lenet1/errors.py'], not needed ['lenet1/loss.py']"
    ]
    assert deps.differences(text, generated()) == []


def test_a_directory_dep_must_be_needed_whole(tmp_path):
    package = tmp_path / "lenet1" / "package"
    (package / "csrc").mkdir(parents=True)
    for name, text in [("__init__.py", ""), ("used.py", "x = 1"), ("other.py", "y = 2"), ("csrc/engine.c", "int f;")]:
        (package / name).write_text(text)
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "used.pyc").write_bytes(b"")
    bytecode = lambda path: "__pycache__" in path.parts  # noqa: E731 (what .dvcignore leaves out, for this tree)
    elsewhere = tmp_path / "lenet1" / "elsewhere.py"
    needed = {package / "used.py", package / "csrc", elsewhere}
    assert deps.code_deps(needed, bytecode, tmp_path) == [
        "lenet1/elsewhere.py",
        "lenet1/package/csrc",
        "lenet1/package/used.py",
    ]  # other.py is not needed
    needed.add(package / "other.py")
    assert deps.code_deps(needed, bytecode, tmp_path) == ["lenet1/elsewhere.py", "lenet1/package"]  # not the bytecode


def test_the_import_walk_finds_parent_packages(tmp_path):
    # `from lenet1.engine.exact import X` runs lenet1/engine/__init__.py before exact.py.
    module = tmp_path / "m.py"
    module.write_text("from lenet1.engine.exact import Layout\n")
    assert ROOT / "lenet1" / "engine" / "__init__.py" in deps.project_imports(module)


def test_the_import_walk_finds_indirect_imports():
    # stages.train reaches lenet1/engine/probe.py only through lenet1/train.py and lenet1/engine/__init__.py.
    found = deps.project_imports(ROOT / "stages" / "train.py")
    assert ROOT / "lenet1" / "engine" / "probe.py" in found
    assert ROOT / "lenet1" / "engine" / "__init__.py" in found
    assert ROOT / "lenet1" / "config" / "params.py" in found
    assert ROOT / "lenet1" / "pipeline" / "__init__.py" in found  # a package's __init__ runs too
    assert ROOT / "lenet1" / "engine" / "csrc" in found


def test_dvc_parses_our_yaml_with_libyaml_and_gets_the_same_values():
    import ruamel.yaml

    assert ruamel.yaml.__with_libyaml__, "pip install -r requirements.txt: it pins ruamel.yaml.clib"
    for name in ("dvc.yaml", "dvc.lock", "params.yaml"):  # as DVC reads them: typ="safe"
        text = (ROOT / name).read_text()
        assert ruamel.yaml.YAML(typ="safe").load(text) == ruamel.yaml.YAML(typ="safe", pure=True).load(text), name


@pytest.mark.parametrize(
    "name", ["__pycache__/exact.cpython-311.pyc", ".exact.py.swp", "exact.py~", ".#exact.py", "csrc/.DS_Store"]
)
def test_a_directory_dep_hashes_code_not_bytecode_or_editor_files(name):
    # .dvcignore: a stray file in lenet1/engine must not change the dep's hash and rerun train and evaluate.
    engine = ROOT / "lenet1" / "engine"
    assert dvc_ignores(engine / name)
    assert not dvc_ignores(engine / "exact.py")


def test_the_config_and_data_layers_import_nothing_above_them():
    config, data = ROOT / "lenet1" / "config", ROOT / "lenet1" / "data"
    below_config = {ROOT / "lenet1" / "errors.py", ROOT / "lenet1" / "architecture.py"}
    for module in config.glob("*.py"):
        assert {path for path in deps.project_imports(module) if not path.is_relative_to(config)} <= below_config
    for module in data.glob("*.py"):
        above = [path for path in deps.project_imports(module) if path.is_relative_to(ROOT / "lenet1" / "pipeline")]
        assert not above, f"{module.name} imports {above}: lenet1.data stands below lenet1.pipeline"
    for stage in ("download", "split"):  # editing the model's tables must not rerun the MNIST download
        assert not {"lenet1/architecture.py", "lenet1/model.py"} & set(generated()[stage])
