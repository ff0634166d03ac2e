"""Writing recipes: a new one for ``wheelfarm add``, a new pin for ``wheelfarm bump``.

The one TOML writer of recipes. It edits with tomlkit, so a recipe keeps its
comments, order and layout: a bump's diff is the version and hash lines alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.items import Table

from wheelfarm.errors import RecipeError


def _q(value: str) -> str:
    """``value`` as a TOML string, quoted and escaped by tomlkit."""
    return tomlkit.string(value).as_string()


def new_recipe(name: str, version: str, *, sha256: str | None = None, git: str | None = None,
               rev: str | None = None, origin: str = "") -> str:
    """The text of a new recipe for ``name==version``: from an index's sdist
    (``sha256``) or from a git commit (``git`` and ``rev``), the usual keys
    commented so a newcomer sees what can be set."""
    if git is not None:
        source = f"git = {_q(git)}\nrev = {_q(rev or '')}  # a full commit id\n"
    else:
        source = f"pypi = true\nsha256 = {_q(sha256 or '')}\n"
    module = name.replace("-", "_").replace(".", "_").lower()
    text = f"""\
# {name} {version}{f' from {origin}' if origin else ''}, written by `wheelfarm add`.
# `wheelfarm outdated` lists newer releases; `wheelfarm bump` moves to one.

[package]
name = {_q(name)}
version = {_q(version)}
# Which releases `outdated` and `bump` follow: "minor" (this major version),
# "patch" (this major.minor) or a version specifier such as "<3".
# track = "minor"

[source]
{source}
[build]
# targets = ["manylinux2014_x86_64"]  # default: the farm's targets (wheelfarm.toml)
# pythons = ["cp39", "cp312"]         # default: every CPython found within Requires-Python
requires = []                         # more build requirements
env = {{}}
before-build = []                     # shell commands run in the source tree first

[test]
# Modules that must import from the installed wheel, and shell commands run
# in an empty directory ({{source}} is the unpacked source tree).
# imports = [{_q(module)}]
commands = []
requires = []
"""
    tomlkit.parse(text)  # the writer's own check: the text is TOML
    return text


@dataclass(frozen=True)
class Pin:
    """What a recipe file pins, read without the recipe loader's checks (a recipe
    missing its sha256 is exactly what ``bump`` fixes)."""

    name: str
    version: str
    kind: str  # the source kind: pypi, url, git, path
    sha256: str | None
    track: str | None


def read_pin(text: str, path: Path) -> Pin:
    doc = _parse(text, path)
    package, source = _table(doc, "package", path), _table(doc, "source", path)
    for key in ("name", "version"):
        if not isinstance(package.get(key), str):
            raise RecipeError(path, f"package.{key}", "required (a string)")
    kinds = [k for k in ("path", "pypi", "url", "git") if source.get(k) not in (None, False)]
    sha, track = source.get("sha256"), package.get("track")
    return Pin(name=str(package["name"]), version=str(package["version"]),
               kind=kinds[0] if len(kinds) == 1 else "none",
               sha256=str(sha) if sha is not None else None,
               track=str(track) if track is not None else None)


def pin(text: str, path: Path, version: str, sha256: str) -> str:
    """``text`` with ``package.version`` and ``source.sha256`` set; every other
    byte (comments, order, spacing) as it was."""
    doc = _parse(text, path)
    _table(doc, "package", path)["version"] = version
    _table(doc, "source", path)["sha256"] = sha256
    return doc.as_string()


def _parse(text: str, path: Path) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise RecipeError(path, None, f"invalid TOML: {exc}") from None


def _table(doc: tomlkit.TOMLDocument, key: str, path: Path) -> Any:
    table = doc.get(key)
    if table is None:
        raise RecipeError(path, key, "missing")
    if not isinstance(table, Table | dict):
        raise RecipeError(path, key, "expected a table")
    return table
