"""Where a recipe's source comes from, and the pin that makes it reproducible.

Planning needs a source's identity (part of every job's key) and must refuse a
bad location before anything runs; fetching it is the build wing's
(:mod:`wheelfarm.build.source`, :mod:`wheelfarm.build.gitsource`).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version

from wheelfarm.errors import ConfigError, RecipeError
from wheelfarm.fsutil import sha256_file

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_REV_RE = re.compile(r"[0-9a-f]{40}")
_URL = re.compile(r"(https?|ssh|git|file)://[^\s]*")
_SCP = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*@[A-Za-z0-9][A-Za-z0-9.-]*:[^\s:][^\s]*")

SourceKind = Literal["path", "pypi", "url", "git"]


@dataclass(frozen=True)
class SourceSpec:
    """Where a recipe's source comes from and the pin that makes it reproducible."""

    kind: SourceKind
    location: str
    sha256: str | None = None
    rev: str | None = None
    name: str = ""
    version: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("path", "pypi", "url", "git"):
            raise ConfigError(f"unknown source kind {self.kind!r}")
        if self.sha256 is not None and not _SHA256_RE.fullmatch(self.sha256.lower()):
            raise ConfigError(f"sha256 must be 64 hex digits, got {self.sha256!r}")
        if self.kind == "git" and not _REV_RE.fullmatch((self.rev or "").lower()):
            raise ConfigError(f"git source {self.location}: rev must be a full 40-hex commit id")
        if self.kind == "git":
            problem = location_problem(self.location)
            if problem is not None:
                raise ConfigError(f"git source {self.location!r}: {problem}")
        if self.kind == "pypi":
            if not (self.name and self.version):
                raise ConfigError("pypi source needs a name and a version")
            try:
                Version(self.version)
            except InvalidVersion:
                raise ConfigError(f"pypi source {self.name}: bad version {self.version!r}") \
                    from None

    def identity(self) -> str:
        """A stable string for content keys: what pins the bytes, not how they are reached."""
        sha = (self.sha256 or "").lower()
        if self.kind == "pypi":
            # 1.0 and 1.0.0 are one version (PEP 440), so they must make one key.
            version = canonicalize_version(self.version)
            return f"pypi:{canonicalize_name(self.name)}=={version}:sha256={sha}"
        if self.kind == "url":
            return f"url:{self.location}:sha256={sha}"
        if self.kind == "git":
            return f"git:{self.location}@{(self.rev or '').lower()}"
        if Path(self.location).is_file():
            return f"path-archive:sha256={sha256_file(Path(self.location))}"
        # The tree's content, not its location: two clones of one recipe set
        # make one key, and an edited source makes another.
        return f"path:tree={tree_digest(Path(self.location))}"


def location_problem(location: str) -> str | None:
    """Why ``location`` is not a git location wheelfarm fetches from, or None.

    A location is data, never an option: http(s)://, ssh://, git:// and file:// URLs,
    ``user@host:path``, or an absolute path; nothing that starts with ``-`` anywhere
    git could read it as an option (the whole value, a URL's host).
    """
    if not location or location.startswith("-") or any(c in location for c in "\0\n\r"):
        return "must be a git URL or an absolute path, not an option"
    if _URL.fullmatch(location):
        rest = location.split("://", 1)[1]
        host = rest.rsplit("@", 1)[-1] if "@" in rest.split("/", 1)[0] else rest
        if host.startswith("-") or rest.split("/", 1)[0].startswith("-"):
            return "a URL whose host starts with '-'"
        return None
    if _SCP.fullmatch(location) or location.startswith("/"):
        return None
    return ("expected an https://, http://, ssh://, git:// or file:// URL, "
            "user@host:path, or an absolute path")


# Anywhere in the tree: never part of a source, often large or machine-specific.
_IGNORE_ANYWHERE = frozenset({".git", "__pycache__", ".venv"})
# Only at the project top: a package may legitimately contain a `build` or `dist` module.
_IGNORE_AT_TOP = frozenset({"build", "dist"})


def ignored_names(top: Path, directory: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n in _IGNORE_ANYWHERE or n.endswith(".egg-info")}
    if Path(directory) == top:
        skip |= _IGNORE_AT_TOP & set(names)
    if "target" in names and "Cargo.toml" in names:
        skip.add("target")  # cargo's build dir, only where a crate lives
    return skip


def tree_digest(root: Path) -> str:
    """sha256 over a source tree's paths, executable bits, link targets and bytes,
    skipping what a path copy skips (build output, VCS and cache directories)."""
    top = root.resolve()
    digest = hashlib.sha256()
    for directory, dirnames, filenames in os.walk(top):
        skip = ignored_names(top, directory, [*dirnames, *filenames])
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        base = Path(directory)
        for name in sorted(f for f in filenames if f not in skip):
            path = base / name
            rel = path.relative_to(top).as_posix()
            if path.is_symlink():
                digest.update(f"L {rel} {os.readlink(path)}\n".encode())
                continue
            executable = "x" if os.access(path, os.X_OK) else "-"
            digest.update(f"F {rel} {executable} {sha256_file(path)}\n".encode())
    return digest.hexdigest()


def from_table(path: Path, table: dict[str, Any], name: str, version: str) -> SourceSpec:
    """A recipe's ``[source]`` table (already checked for unknown keys and types)."""
    kinds = [k for k in ("path", "pypi", "url", "git") if k in table]
    if table.get("pypi") is False:
        kinds.remove("pypi")
    if not kinds:
        raise RecipeError(path, "source", "missing; give exactly one of path, pypi, url, git")
    if len(kinds) > 1:
        raise RecipeError(path, "source", f"two sources ({' and '.join(kinds)}); give exactly one")
    kind = kinds[0]
    sha = table.get("sha256")
    if sha is not None and not _SHA256_RE.fullmatch(sha.lower()):
        raise RecipeError(path, "source.sha256", "expected 64 hexadecimal digits")
    if kind == "pypi" and sha is None:
        raise RecipeError(path, "source.sha256", "required with source.pypi; pin the index's "
                          f"hash with 'wheelfarm bump {path} --to {version}' (keeps the rest "
                          f"of the recipe) or 'wheelfarm add {name}=={version} --dir "
                          f"{path.parent} --force' (writes a new one)")
    if kind == "url" and sha is None:
        raise RecipeError(path, "source.sha256", "required with source.url")
    if "rev" in table and kind != "git":
        raise RecipeError(path, "source.rev", "only valid with source.git")
    if kind == "path":
        where = (path.parent / table["path"]).resolve()
        if not where.is_dir():
            raise RecipeError(path, "source.path", f"no such directory: {where}")
        return SourceSpec(kind="path", location=str(where))
    if kind == "git":
        rev = table.get("rev")
        if rev is None:
            raise RecipeError(path, "source.rev", "required with source.git (a full commit id)")
        if not _REV_RE.fullmatch(rev):
            raise RecipeError(path, "source.rev", "expected a full 40-digit commit id")
        problem = location_problem(table["git"])
        if problem is not None:
            raise RecipeError(path, "source.git", problem)
        return SourceSpec(kind="git", location=table["git"], rev=rev)
    if kind == "url":
        url = table["url"]
        if not url.startswith(("https://", "http://", "file://")):
            raise RecipeError(path, "source.url", "expected an http(s):// or file:// URL")
        return SourceSpec(kind="url", location=url, sha256=sha.lower() if sha else None)
    return SourceSpec(kind="pypi", location="", sha256=sha.lower() if sha else None,
                      name=name, version=version)
