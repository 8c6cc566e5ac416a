"""The house's layout: three parts, and the dependency between them running one way only.

`flipper.core` (the model, the store and its scripts, settings, the write path) imports neither of the
others; `flipper.serve` (what the function runs to answer an evaluation) never imports `flipper.operate`
(what an operator runs); only `flipper.handler`, the Lambda entry, composes the two. No module imports
itself back through others, even lazily inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "functions" / "flipper"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(name: str) -> set[str]:
    """The flipper modules `name` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{name}, line {node.lineno}: a relative import; the house imports by full name")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flipper"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("flipper"))
    return found - {name}


def part(name: str) -> str:
    return name.split(".")[1] if name.count(".") >= 1 else "flipper"


@pytest.mark.parametrize(
    ("importer", "forbidden"), [("core", {"serve", "operate", "handler"}), ("serve", {"operate", "handler"})]
)
def test_the_dependency_runs_one_way(importer: str, forbidden: set[str]) -> None:
    wrong = {
        (name, imported)
        for name in MODULES
        if part(name) == importer
        for imported in imports(name)
        if part(imported) in forbidden
    }
    assert wrong == set()


def test_there_is_no_import_circle() -> None:
    graph = {name: imports(name) & MODULES.keys() for name in MODULES}

    def reaches(start: str, target: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for following in graph[todo.pop()]:
                if following == target:
                    return True
                if following not in seen:
                    seen.add(following)
                    todo.append(following)
        return False

    assert [name for name in graph if reaches(name, name)] == []


def test_every_module_lives_in_one_of_the_three_parts() -> None:
    top = {name for name in MODULES if name.count(".") <= 1 and part(name) not in ("core", "serve", "operate")}
    assert top == {"flipper", "flipper.handler"}
