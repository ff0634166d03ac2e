"""Checking TOML tables against a declared shape, with "did you mean" for typos.

Recipes and the farm config share this so that every bad key is reported the
same way: ``<file>: <dotted.key>: <what is wrong>``.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wheelfarm.errors import RecipeError

# A field is a type check: str, bool, int, float, "list[str]", "dict[str,str]",
# or a nested schema (a dict).
Schema = Mapping[str, Any]


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise RecipeError(path, None, "no such file") from None
    except IsADirectoryError:
        raise RecipeError(path, None, "is a directory, not a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(path, None, f"invalid TOML: {exc}") from None


def check(data: Mapping[str, Any], schema: Schema, path: Path, prefix: str = "") -> None:
    """Raise RecipeError for the first unknown key or wrongly typed value."""
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            hint = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.6)
            advice = f"; did you mean {hint[0]!r}?" if hint else (
                f"; expected one of: {', '.join(sorted(schema))}"
            )
            raise RecipeError(path, dotted, "unknown key" + advice)
        kind = schema[key]
        if isinstance(kind, Mapping):
            if not isinstance(value, dict):
                raise RecipeError(path, dotted, f"expected a table, got {_type(value)}")
            check(value, kind, path, dotted + ".")
        elif not _matches(value, kind):
            raise RecipeError(path, dotted, f"expected {_describe(kind)}, got {_type(value)}")


def _matches(value: object, kind: Any) -> bool:
    if kind == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "dict[str,str]":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if kind == "dict[str,list[str]]":
        return isinstance(value, dict) and all(_matches(v, "list[str]") for v in value.values())
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(kind, tuple):
        return any(_matches(value, k) for k in kind)
    return isinstance(value, kind)


def _describe(kind: Any) -> str:
    if isinstance(kind, tuple):
        return " or ".join(_describe(k) for k in kind)
    return {
        str: "a string", bool: "true or false", int: "an integer", float: "a number",
        "list[str]": "a list of strings", "dict[str,str]": "a table of strings",
        "dict[str,list[str]]": "a table of lists of strings",
    }.get(kind, str(kind))


def _type(value: object) -> str:
    return {
        str: "a string", bool: "a boolean", int: "an integer", float: "a number",
        list: "a list", dict: "a table",
    }.get(type(value), type(value).__name__)
