"""How a build is shaped, as recipes and the command line choose it: the build
profile and what becomes of debug symbols.

The build wing acts on these (:mod:`wheelfarm.build.ccwrap` adds a profile's
flags, :mod:`wheelfarm.build.debuginfo` splits or strips); planning only
needs the names, to check a recipe and to put the choice in a job's key.
"""

from __future__ import annotations

from typing import Literal, get_args

from wheelfarm.errors import ConfigError

PROFILES = ("release", "debug")
DEFAULT_PROFILE = "release"

DebugSymbols = Literal["split", "strip", "keep"]
MODES: tuple[str, ...] = get_args(DebugSymbols)
DEFAULT_DEBUG: DebugSymbols = "split"


def parse_mode(value: object, where: str = "build.debug-symbols") -> DebugSymbols:
    if value is None:
        return DEFAULT_DEBUG
    for mode in get_args(DebugSymbols):
        if value == mode:
            return mode  # type: ignore[no-any-return]
    raise ConfigError(f"{where}: expected one of {', '.join(map(repr, MODES))}, got {value!r}")
