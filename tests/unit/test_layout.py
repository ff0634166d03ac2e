"""The house's shape: four wings over a floor, imports pointing one way, no cycles.

Every import counts, wherever it is written: at the top, inside a function,
or under ``TYPE_CHECKING`` (a hidden import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import wheelfarm
from wheelfarm.build import ccwrap
from wheelfarm.plan import profiles

PACKAGE = Path(wheelfarm.__file__).parent
# A wing may import the wings after it, never those before it.
ORDER = ("cli", "api", "farm", "publish", "build", "plan", "floor")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:  # `from pkg import module` names a module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return {m for m in found if m == "wheelfarm" or m.startswith("wheelfarm.")}


GRAPH = {name: _imports(name, path) - {name} for name, path in MODULES.items()}


def _wing(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__",):
        return "cli"  # the package itself and ``python -m wheelfarm`` start the CLI
    return parts[1] if parts[1] in ORDER else "floor"


def test_the_top_level_holds_the_wings_and_a_small_floor() -> None:
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    assert len(entries) <= 12, entries
    for wing in ("plan", "build", "farm", "publish", "cli"):
        assert (PACKAGE / wing / "__init__.py").is_file()


def test_imports_point_one_way() -> None:
    wrong = []
    for module, imported in GRAPH.items():
        mine = ORDER.index(_wing(module))
        for other in imported:
            if other == "wheelfarm":
                continue  # the package's own __init__ (its version)
            if ORDER.index(_wing(other)) < mine:
                wrong.append(f"{module} -> {other}")
    assert wrong == []


def test_no_import_cycles() -> None:
    # Package __init__ modules are skipped as nodes: importing a.b runs a's __init__,
    # which here never imports its children.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_checker_sees_hidden_imports(tmp_path: Path) -> None:
    # The checks above are only as good as the import reader: it must see a
    # function-level and a TYPE_CHECKING import as a dependency.
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\n"
                      "if TYPE_CHECKING:\n    from wheelfarm.farm import worker\n"
                      "def f():\n    from ..publish import store\n")
    found = _imports("wheelfarm.build.m", source)
    assert {"wheelfarm.farm.worker", "wheelfarm.publish.store"} <= found


def test_the_standalone_wrapper_knows_the_same_profiles() -> None:
    # ccwrap runs on its own inside containers, so it keeps its own copy.
    assert ccwrap.PROFILES == profiles.PROFILES
    assert ccwrap.DEFAULT_PROFILE == profiles.DEFAULT_PROFILE
