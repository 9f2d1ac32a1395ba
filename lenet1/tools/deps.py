"""Each stage's code deps in ``dvc.yaml``, computed from its imports.

    python -m lenet1.tools.deps --check   # exit 1 naming every stage whose deps differ
    python -m lenet1.tools.deps --write   # rewrite them

A stage's code deps are its module and every project file it imports, directly or through each other (a
package's ``__init__.py`` when it holds code; ``lenet1/engine/csrc`` with ``build.py``, which compiles it).
A directory stands for its files when the stage needs every one that DVC hashes, so ``dvc.lock`` stays short.
Deps outside the code (data, ``params.yaml``) and their comments are kept as written, ahead of the code.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path
from collections.abc import Callable

import yaml

ROOT = Path(__file__).resolve().parents[2]
CODE = ("lenet1", "stages")  # the folders whose files are code deps; the rest of a stage's deps is kept as written
COMPILED = {Path("lenet1/engine/build.py"): Path("lenet1/engine/csrc")}  # a module -> the sources it compiles


def project_imports(module_file: Path, root: Path = ROOT, seen: set[Path] | None = None) -> set[Path]:
    """The project's files that ``module_file`` imports, directly or through each other, as absolute paths."""
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(module_file.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            packages = [root.joinpath(*parts[:end]) / "__init__.py" for end in range(1, len(parts))]
            base = root.joinpath(*parts)
            for path in (*packages, base.with_suffix(".py"), base / "__init__.py"):
                if path.exists() and path.read_text().strip() and path not in seen:
                    seen.add(path)
                    if path.relative_to(root) in COMPILED:
                        seen.add(root / COMPILED[path.relative_to(root)])
                    project_imports(path, root, seen)
    return seen


def stage_module(command: str, root: Path = ROOT) -> Path:
    """The module a stage's ``python -m MODULE`` command runs."""
    words = command.split()
    if words[:2] != ["python", "-m"]:
        raise ValueError(f"not a `python -m MODULE` stage command: {command!r}")
    return root / (words[2].replace(".", "/") + ".py")


def hashed_files(directory: Path, ignored: Callable[[Path], bool]) -> list[Path]:
    """The files DVC hashes for a directory dep, but for an empty ``__init__.py``, which runs nothing."""
    return [
        path
        for path in directory.rglob("*")
        if path.is_file() and not ignored(path) and not (path.name == "__init__.py" and not path.read_text().strip())
    ]


def covered(path: Path, deps: set[Path]) -> bool:
    """``path`` is in ``deps``, or in a directory that is."""
    return path in deps or any(parent in deps for parent in path.parents)


def code_deps(needed: set[Path], ignored: Callable[[Path], bool], root: Path = ROOT) -> list[str]:
    """``needed`` as deps: a package directory whose hashed files are all needed stands for them."""
    whole = set()
    for directory in sorted({parent for path in needed for parent in path.parents if parent.is_relative_to(root)}):
        if directory == root or directory.parent == root or covered(directory, whole):
            continue  # never a top folder (lenet1, stages) whole: a stage imports a part of them
        files = hashed_files(directory, ignored)
        if files and all(covered(path, needed) for path in files):
            whole.add(directory)
    deps = whole | {path for path in needed if not any(parent in whole for parent in path.parents)}
    return sorted((str(path.relative_to(root)) for path in deps), key=lambda dep: (not dep.startswith("stages/"), dep))


def dvc_ignored(root: Path = ROOT) -> Callable[[Path], bool]:
    """DVC's own filter of the repository's .dvcignore: what a directory dep does not hash."""
    from dvc.repo import Repo  # here: a second to import, needed only when a directory is weighed

    with Repo(str(root)) as repo:
        ignore = repo.dvcignore
    return lambda path: ignore.is_ignored_file(str(path))


def generated_deps(root: Path = ROOT, ignored: Callable[[Path], bool] | None = None) -> dict[str, list[str]]:
    """Each stage's code deps, computed from its imports: stage name -> deps."""
    ignored = ignored or dvc_ignored(root)
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    result = {}
    for name, stage in stages.items():
        module = stage_module(stage["cmd"], root)
        result[name] = code_deps({module, *project_imports(module, root)}, ignored, root)
    return result


def rewrite(text: str, deps: dict[str, list[str]]) -> str:
    """dvc.yaml's text with each stage's code deps replaced by ``deps``; everything else kept line for line."""
    lines, out, stage, in_deps = text.splitlines(keepends=True), [], None, False
    for line in lines + ["\n"]:
        if in_deps and not re.match(r"      - ", line):
            out += [f"      - {dep}\n" for dep in deps[stage]]
            in_deps = False
        if match := re.match(r"  (\w+):\s*$", line):
            stage = match.group(1)
        in_deps = in_deps or (line.rstrip() == "    deps:" and stage in deps)
        item = re.match(r"      - ([^\s#]+)", line) if in_deps else None
        if not (item and item.group(1).split("/")[0] in CODE):
            out.append(line)
    return "".join(out[:-1])


def differences(text: str, deps: dict[str, list[str]]) -> list[str]:
    """One line for each stage of dvc.yaml's ``text`` whose code deps are not ``deps``."""
    lines = []
    for name, stage in yaml.safe_load(text)["stages"].items():
        declared = [dep for dep in stage.get("deps", []) if dep.split("/")[0] in CODE]
        missing, extra = sorted(set(deps[name]) - set(declared)), sorted(set(declared) - set(deps[name]))
        if missing or extra:
            lines.append(f"stage {name}: missing {missing}, not needed {extra}")
        elif declared != deps[name]:
            lines.append(f"stage {name}: code deps out of order")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet1.tools.deps", description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="exit 1 if dvc.yaml's code deps differ from the imports")
    action.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps from the imports")
    args = parser.parse_args(argv)
    path = ROOT / "dvc.yaml"
    text, deps = path.read_text(), generated_deps()
    if args.write:
        new = rewrite(text, deps)
        if new != text:
            path.write_text(new)
        print(f"dvc.yaml: code deps {'rewritten' if new != text else 'already up to date'}")
        return 0
    stale = differences(text, deps)
    for line in stale:
        print(line)
    if stale:
        print("dvc.yaml: run `python -m lenet1.tools.deps --write`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
