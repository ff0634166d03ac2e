"""cibuildwheel's configuration read as a migration source for a project directory.

A project that builds with cibuildwheel keeps its settings in
``[tool.cibuildwheel]`` and ``CIBW_*`` environment variables. The keys
wheelfarm has a meaning for are mapped onto the ``[tool.wheelfarm]`` shape;
every other key is named in a warning, never dropped without a word.

- ``build``, ``skip`` (selectors) -> ``build.pythons``: the CPython tags selected
  (unset when every one is);
- the same with ``archs`` and ``manylinux-*-image``/``musllinux-*-image`` ->
  ``build.targets``: the Linux platforms selected, at the images' policies;
- ``test-command`` (``{project}`` and ``{package}`` become ``{source}``) ->
  ``test.commands``; ``test-requires`` -> ``test.requires``;
- ``before-build`` -> ``build.before-build``; ``environment`` -> ``build.env``
  (values taken literally: wheelfarm expands no variables).

Precedence, highest first: ``[tool.wheelfarm]``, ``CIBW_*_LINUX``, ``CIBW_*``,
``[tool.cibuildwheel.linux]``, ``[tool.cibuildwheel]`` (the environment over
the file, as in cibuildwheel; wheelfarm's own table over both). A value that
a higher source hides is named in a warning too.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wheelfarm.errors import RecipeError
from wheelfarm.plan.pythons import MIN_PYTHON

CANDIDATE_PYTHONS = tuple(f"cp3{m}" for m in range(MIN_PYTHON[1], 15))
LINUX_ARCHES = ("x86_64", "aarch64")
_SELECTORS = ("build", "skip", "archs")
_IMAGE = re.compile(r"^(manylinux|musllinux)-(x86_64|aarch64)-image$")
_POLICIES = {"manylinux2014": "manylinux_2_17", "manylinux_2_28": "manylinux_2_28",
             "manylinux_2_34": "manylinux_2_34", "musllinux_1_2": "musllinux_1_2",
             "musllinux_1_1": "musllinux_1_1"}
_DEFAULT_POLICY = {"manylinux": "manylinux_2_28", "musllinux": "musllinux_1_2"}
_PLATFORMS = ("linux", "macos", "windows", "pyodide", "ios", "android")
_BRACES = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Migration:
    """``tool``: a ``[tool.wheelfarm]``-shaped table of what was mapped;
    ``warnings``: one line per key not used, each naming it."""

    tool: dict[str, dict[str, Any]]
    warnings: tuple[str, ...]


def settings(pyproject: Mapping[str, Any], environ: Mapping[str, str]
             ) -> list[tuple[str, str, Any]]:
    """(where, key, value) of every cibuildwheel setting, lowest precedence first."""
    tool = pyproject.get("tool", {})
    table = tool.get("cibuildwheel", {}) if isinstance(tool, Mapping) else {}
    found: list[tuple[str, str, Any]] = []
    if isinstance(table, Mapping):
        found += [(f"tool.cibuildwheel.{k}", k, v) for k, v in table.items()
                  if k not in _PLATFORMS]
        linux = table.get("linux", {})
        if isinstance(linux, Mapping):
            found += [(f"tool.cibuildwheel.linux.{k}", k, v) for k, v in linux.items()]
        found += [(f"tool.cibuildwheel.{p}", p, table[p]) for p in _PLATFORMS
                  if p != "linux" and p in table]
    plain, linux_env, other = [], [], []
    for var, value in sorted(environ.items()):
        if not var.startswith("CIBW_"):
            continue
        key = var[5:].lower().replace("_", "-")
        platform = key.rsplit("-", 1)[-1]
        if platform == "linux":
            linux_env.append((var, key.removesuffix("-linux"), value))
        elif platform in _PLATFORMS:
            other.append((var, var, value))  # another platform's: named, not used
        else:
            plain.append((var, key, value))
    return found + plain + linux_env + other


def migrate(pyproject: Mapping[str, Any], environ: Mapping[str, str], path: Path) -> Migration:
    """Map the cibuildwheel settings of a project (its pyproject data and the
    environment) onto wheelfarm's; ``path`` names the file in errors."""
    chosen: dict[str, tuple[str, Any]] = {}  # key -> (where, value): the last one wins
    warnings: list[str] = []
    for where, key, value in settings(pyproject, environ):
        if key in _MAPPED or key in _SELECTORS or _IMAGE.match(key):
            if key in chosen:
                warnings.append(f"{chosen[key][0]} is overridden by {where}")
            chosen[key] = (where, value)
        else:
            warnings.append(f"{where}: cibuildwheel setting not used by wheelfarm (ignored)")
    tool: dict[str, dict[str, Any]] = {"build": {}, "test": {}}
    for key, (where, value) in chosen.items():
        if key in _MAPPED:
            section, name, convert = _MAPPED[key]
            tool[section][name] = convert(value, where, path, warnings)
    _selectors(chosen, tool, path, warnings)
    return Migration({k: v for k, v in tool.items() if v}, tuple(warnings))


def merge(tool: Mapping[str, Any], migration: Migration, path: Path
          ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``[tool.wheelfarm]`` with what the migration adds; its own values win, and
    each cibuildwheel value they hide is named in a warning."""
    merged = {k: dict(v) if isinstance(v, Mapping) else v for k, v in tool.items()}
    warnings = list(migration.warnings)
    for section, values in migration.tool.items():
        target = merged.setdefault(section, {})
        if not isinstance(target, dict):
            continue  # the schema check names the bad table
        for key, value in values.items():
            if key in target:
                warnings.append(f"tool.wheelfarm.{section}.{key} is set: the cibuildwheel "
                                f"value ({_short(value)}) is ignored")
            else:
                target[key] = value
    return merged, tuple(warnings)


# -- values ----------------------------------------------------------------------------------


def _strings(value: Any, where: str, path: Path, split: bool) -> list[str]:
    if isinstance(value, str):
        return value.split() if split else ([value] if value.strip() else [])
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise RecipeError(path, where, "expected a string or a list of strings")


def _commands(value: Any, where: str, path: Path, warnings: list[str]) -> list[str]:
    return [c.replace("{project}", "{source}").replace("{package}", "{source}")
            for c in _strings(value, where, path, split=False)]


def _requires(value: Any, where: str, path: Path, warnings: list[str]) -> list[str]:
    return _strings(value, where, path, split=True)


def _environment(value: Any, where: str, path: Path, warnings: list[str]) -> dict[str, str]:
    if isinstance(value, Mapping):
        pairs = {str(k): str(v) for k, v in value.items()}
    elif isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise RecipeError(path, where, f"cannot parse: {exc}") from None
        pairs = {}
        for word in words:
            name, eq, text = word.partition("=")
            if not eq or not name:
                raise RecipeError(path, where, f"{word!r}: expected NAME=VALUE")
            pairs[name] = text
    else:
        raise RecipeError(path, where, "expected a string or a table")
    for name, text in pairs.items():
        if "$" in text:
            warnings.append(f"{where}: {name}={text!r} is taken literally "
                            "(wheelfarm expands no variables)")
    return pairs


_MAPPED: dict[str, tuple[str, str, Any]] = {
    "test-command": ("test", "commands", _commands),
    "test-requires": ("test", "requires", _requires),
    "before-build": ("build", "before-build", _commands),
    "environment": ("build", "env", _environment),
}


# -- selectors -------------------------------------------------------------------------------


def _expand(pattern: str) -> list[str]:
    """``cp3{11,12}-*`` -> ``cp311-*``, ``cp312-*`` (cibuildwheel's brace expansion)."""
    m = _BRACES.search(pattern)
    if m is None:
        return [pattern]
    head, tail = pattern[:m.start()], pattern[m.end():]
    return [x for part in m.group(1).split(",") for x in _expand(head + part + tail)]


def _matches(identifier: str, selector: str) -> bool:
    return any(fnmatch.fnmatch(identifier, p) for word in selector.split()
               for p in _expand(word))


def _selectors(chosen: Mapping[str, tuple[str, Any]], tool: dict[str, dict[str, Any]],
               path: Path, warnings: list[str]) -> None:
    if not any(k in chosen for k in _SELECTORS) and not any(_IMAGE.match(k) for k in chosen):
        return
    text = {k: " ".join(_strings(chosen[k][1], chosen[k][0], path, split=True))
            for k in _SELECTORS if k in chosen}
    arches = _arches(text.get("archs", "auto"), chosen.get("archs", ("archs", ""))[0], path)
    platforms = [f"{kind}_{arch}" for kind in ("manylinux", "musllinux") for arch in arches]
    build, skip = text.get("build", "*"), text.get("skip", "")
    selected = [(py, plat) for py in CANDIDATE_PYTHONS for plat in platforms
                if _matches(f"{py}-{plat}", build) and not _matches(f"{py}-{plat}", skip)]
    if not selected:
        where = chosen.get("build", chosen.get("skip", ("build", None)))[0]
        raise RecipeError(path, where, "selects no CPython build for Linux")
    pythons = [py for py in CANDIDATE_PYTHONS if any(p == py for p, _ in selected)]
    if len(pythons) < len(CANDIDATE_PYTHONS):
        tool["build"]["pythons"] = pythons
    targets = []
    for plat in platforms:
        if any(p == plat for _, p in selected):
            kind, arch = plat.split("_", 1)
            image = chosen.get(f"{kind}-{arch}-image")
            policy = _DEFAULT_POLICY[kind]
            if image is not None:
                if _POLICIES.get(image[1], "").startswith(kind):
                    policy = _POLICIES[image[1]]
                else:  # an image of its own: wheelfarm builds to a policy, not in an image
                    warnings.append(f"{image[0]}: {image[1]!r} is not a policy wheelfarm "
                                    f"knows ({', '.join(_POLICIES)}); building {policy}")
            targets.append(f"{policy}_{arch}")
    tool["build"]["targets"] = targets


def _arches(text: str, where: str, path: Path) -> list[str]:
    import platform  # the host's architecture is what "auto" means to cibuildwheel

    native = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(),
                                                        platform.machine().lower())
    found: list[str] = []
    for word in text.split():
        names = {"auto": [native], "native": [native], "auto64": [native],
                 "all": list(LINUX_ARCHES)}.get(word, [word])
        for name in names:
            if name not in LINUX_ARCHES:
                raise RecipeError(path, where, f"{name!r}: wheelfarm builds Linux "
                                  f"{' and '.join(LINUX_ARCHES)}")
            if name not in found:
                found.append(name)
    return found


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
