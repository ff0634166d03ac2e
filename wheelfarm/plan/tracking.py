"""Which upstream releases a recipe follows: ``[package] track``.

``track = "minor"`` follows new minor and patch releases of the same major
version (1.4.2 -> 1.9.0, never 2.0); ``track = "patch"`` only patch releases of
the same major.minor (1.4.2 -> 1.4.7); any other value is a version specifier
(``track = "<3"``, ``">=2,<2.8"``). Without ``track`` a recipe follows every
final release. Pre-releases are never proposed.
"""

from __future__ import annotations

from collections.abc import Iterable

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

KEYWORDS = ("minor", "patch")


def check(track: str) -> str | None:
    """Why ``track`` is not a valid value, or None."""
    if track in KEYWORDS:
        return None
    if not track.strip():
        return "must not be empty"
    try:
        SpecifierSet(track)
    except InvalidSpecifier:
        return (f"{track!r}: expected {' or '.join(map(repr, KEYWORDS))} "
                "or a version specifier such as '<3'")
    return None


def allows(current: Version, candidate: Version, track: str | None) -> bool:
    """Whether a recipe at ``current`` following ``track`` may move to ``candidate``."""
    if candidate.is_prerelease or candidate.is_devrelease:
        return False
    if track == "minor":
        return candidate.major == current.major
    if track == "patch":
        return (candidate.major, candidate.minor) == (current.major, current.minor)
    if track:
        return SpecifierSet(track).contains(candidate)
    return True


def newest(current: Version, candidates: Iterable[Version], track: str | None
           ) -> Version | None:
    """The newest of ``candidates`` above ``current`` that ``track`` allows, or None."""
    allowed = [v for v in candidates if v > current and allows(current, v, track)]
    return max(allowed, default=None)
