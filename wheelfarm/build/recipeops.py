"""``wheelfarm add``, ``outdated`` and ``bump``: recipes kept in step with their upstream.

Each goes through the one index lookup (:mod:`wheelfarm.build.indexlookup`) and
the one recipe writer (:mod:`wheelfarm.plan.recipeedit`); a written recipe is
checked by the recipe loader and locked by ``wheelfarm lock``'s machinery.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from wheelfarm import proc
from wheelfarm.build import indexlookup, lockresolve
from wheelfarm.build.gitsource import ALLOWED_PROTOCOLS, GIT_TIMEOUT
from wheelfarm.errors import CommandError, ConfigError, RecipeError, WheelfarmError
from wheelfarm.fsutil import write_text
from wheelfarm.plan import recipe as recipes
from wheelfarm.plan import recipeedit, tracking
from wheelfarm.plan.config import FarmConfig
from wheelfarm.plan.lockfile import Lock
from wheelfarm.plan.sourcespec import location_problem

_FULL_REV = re.compile(r"^[0-9a-f]{40}$")


def parse_requirement(text: str) -> tuple[str, str]:
    """``NAME==VERSION`` -> (name, version); ConfigError for anything else."""
    name, sep, version = text.partition("==")
    if not sep or not name.strip() or not version.strip():
        raise ConfigError(f"{text!r}: expected NAME==VERSION, e.g. markupsafe==3.0.3")
    try:
        Version(version.strip())
    except InvalidVersion:
        raise ConfigError(f"{text!r}: {version.strip()!r} is not a valid version") from None
    return name.strip(), version.strip()


def resolve_rev(url: str, rev: str) -> str:
    """``rev`` (a branch, a tag or a full commit id) as the full commit id it names."""
    problem = location_problem(url)
    if problem is not None:
        raise ConfigError(f"--git {url!r}: {problem}")
    if _FULL_REV.match(rev.lower()):
        return rev.lower()
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS}
    refs = [f"refs/tags/{rev}^{{}}", f"refs/tags/{rev}", f"refs/heads/{rev}", rev]
    try:
        listed = proc.run(["git", "ls-remote", "--", url, *refs], env=env,
                          timeout=GIT_TIMEOUT).stdout
    except CommandError as exc:
        raise ConfigError(f"git ls-remote {url} failed: {exc}") from exc
    found = {}
    for line in listed.splitlines():
        commit, _, ref = line.partition("\t")
        found[ref] = commit
    for ref in refs:  # a peeled tag (the commit) before the tag object itself
        if ref in found:
            return found[ref]
    raise ConfigError(f"--rev {rev!r}: no branch or tag of that name in {url} "
                      "(give a branch, a tag or a full 40-digit commit id)")


@dataclass(frozen=True)
class Added:
    path: Path
    source: str  # the sdist's URL, or git URL @ commit


def add(config: FarmConfig, requirement: str, directory: Path, *, git: str | None = None,
        rev: str | None = None, force: bool = False) -> Added:
    """Write ``directory/NAME.toml`` for ``NAME==VERSION``: its sdist's sha256 from
    the farm's index, or (``git``) the commit ``rev`` names. The file is checked
    by the recipe loader before it replaces anything."""
    name, version = parse_requirement(requirement)
    path = directory / f"{canonicalize_name(name)}.toml"
    if path.exists() and not force:
        raise ConfigError(f"{path}: a recipe is already there (--force replaces it; "
                          f"'wheelfarm bump {path} --to {version}' keeps its settings)")
    if (git is None) != (rev is None):
        raise ConfigError("--git and --rev go together")
    if git is not None and rev is not None:
        commit = resolve_rev(git, rev)
        text = recipeedit.new_recipe(name, version, git=git, rev=commit, origin=git)
        origin = f"{git} @ {commit}"
    else:
        sdist = indexlookup.find(name, version, config.index_url)
        text = recipeedit.new_recipe(name, version, sha256=sdist.sha256,
                                     origin=config.index_url)
        origin = sdist.url
    recipes.loads(text, path)  # the recipe loader's checks, before the file exists
    directory.mkdir(parents=True, exist_ok=True)
    write_text(path, text)
    return Added(path, origin)


@dataclass(frozen=True)
class Outdated:
    path: Path
    name: str
    current: str
    latest: str | None  # the newest release the recipe's track allows; None: up to date
    newest: str | None  # the index's newest release, whatever the track
    track: str | None


def outdated(config: FarmConfig, paths: Sequence[Path]) -> list[Outdated]:
    """Each ``source.pypi`` recipe of ``paths`` with the releases the farm's index
    has above its version (recipes of other sources follow no index)."""
    found = []
    for r in recipes.discover(list(paths)):
        if r.source.kind != "pypi":
            continue
        versions = indexlookup.releases(indexlookup.sdists(r.name, config.index_url))
        current = Version(r.version)
        latest = tracking.newest(current, versions, r.track)
        newest = max(versions, default=None)
        found.append(Outdated(r.path, r.name, r.version, str(latest) if latest else None,
                              str(newest) if newest and newest > current else None, r.track))
    return found


@dataclass(frozen=True)
class Bumped:
    path: Path
    old: str
    new: str | None  # None: already at the newest release its track allows
    lock: Lock | None


def bump(config: FarmConfig, path: Path, *, to: str | None = None, lock: bool = True
         ) -> Bumped:
    """Move a ``source.pypi`` recipe to ``to`` (else the newest release its track
    allows): the new version and its sdist's sha256, every other line as it was,
    then a fresh lock. A lock that fails puts the recipe back as it was."""
    if path.is_dir():
        raise ConfigError(f"{path}: bump takes one recipe file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(path, None, f"cannot read: {exc}") from None
    pinned = recipeedit.read_pin(text, path)
    if pinned.kind != "pypi":
        raise RecipeError(path, "source", f"bump follows an index; this recipe's source is "
                          f"{pinned.kind} (edit it by hand)")
    if to is None:
        versions = indexlookup.releases(indexlookup.sdists(pinned.name, config.index_url))
        try:
            current = Version(pinned.version)
        except InvalidVersion:
            raise RecipeError(path, "package.version", "not a valid version") from None
        newest = tracking.newest(current, versions, pinned.track)
        if newest is None and pinned.sha256 is not None:
            return Bumped(path, pinned.version, None, None)
        to = str(newest) if newest is not None else pinned.version
    sdist = indexlookup.find(pinned.name, to, config.index_url)
    new_text = recipeedit.pin(text, path, to, sdist.sha256 or "")
    recipes.loads(new_text, path)
    write_text(path, new_text)
    written = None
    if lock:
        try:
            for job in lockresolve.lock_jobs(config, [path]):
                written = lockresolve.lock(job)
        except WheelfarmError:
            write_text(path, text)
            raise
    return Bumped(path, pinned.version, to, written)


def lock_added(config: FarmConfig, path: Path) -> Lock | None:
    """The lock of a recipe ``add`` wrote (``wheelfarm lock``'s machinery)."""
    written = None
    for job in lockresolve.lock_jobs(config, [path]):
        written = lockresolve.lock(job)
    return written
