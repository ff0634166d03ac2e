"""The lines of a build's output that say what went wrong: the first compiler and
linker errors, each with its file:line.

A failed build ends with the build frontend's own words (``ERROR Backend
subprocess exited ...``) and a compiler's last lines (``1 error generated.``);
the cause is further up. These are pure functions over text, so the pipeline,
the CLI and a dashboard find the same lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_ERRORS = 5
_MAX_WIDTH = 300

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# gcc, clang and zig cc: "file.c:12:5: error: ...", "file.c:1:10: fatal error: ...".
_COMPILER = re.compile(r"^\S[^:]*:\d+(?::\d+)?: (?:fatal )?error: ")
# GNU ld: "file.c:12: undefined reference to `f'" (with -g), "file.c:(.text+0x5): ...",
# either also after the linker's name ("/usr/bin/ld: file.c:...").
_LD_UNDEFINED = re.compile(r"^(?:\S*ld: )?\S[^:]*:(?:\d+|\([^)]*\)): undefined reference to ")
# lld (and zig's linker): "ld.lld: error: undefined symbol: f", then where it is used.
_UNDEFINED_SYMBOL = re.compile(r"^(?:[\w.]*ld[\w.]*: )?error: undefined symbol: ")
_REFERENCED = re.compile(r"^\s*(?:>>> |note: )referenced by (\S+)")
# rustc: "error[E0425]: ..." with " --> src/lib.rs:3:5" on a following line.
_RUST = re.compile(r"^error(?:\[E\d{4}\])?: ")
_RUST_AT = re.compile(r"^\s*--> (\S+:\d+:\d+)")
_RUST_SUMMARY = ("error: aborting due to", "error: could not compile")

# pypa/build's advice names options of its own command line, which wheelfarm
# does not have; the work directory is kept with --keep-work instead.
BUILD_TIP = "TIP pass --env-dir and --sdist-extract-dir"


def first_errors(text: str, limit: int = MAX_ERRORS) -> list[str]:
    """The first ``limit`` distinct error lines of ``text``, in order, each one line
    naming where the error is (``file:line[:col]``) when the tool said so."""
    lines = [_ANSI.sub("", line).rstrip() for line in text.splitlines()]
    found: list[str] = []
    for i, line in enumerate(lines):
        shown = _error_at(line, lines[i + 1:i + 4])
        if shown is not None and shown not in found:
            found.append(shown[:_MAX_WIDTH])
            if len(found) == limit:
                break
    return found


def _error_at(line: str, after: Iterable[str]) -> str | None:
    if _COMPILER.match(line) or _LD_UNDEFINED.match(line):
        return line
    if _UNDEFINED_SYMBOL.match(line):
        where = next((m.group(1) for m in map(_REFERENCED.match, after) if m), None)
        return f"{line} (referenced by {where})" if where else line
    if _RUST.match(line) and not line.startswith(_RUST_SUMMARY):
        # A Python tool's "error: Command ... returned non-zero" has no location:
        # an "error:" line counts as rustc's only when a location follows it.
        where = next((m.group(1) for m in map(_RUST_AT.match, after) if m), None)
        if where is not None:
            return f"{where}: {line}"
    return None


def without_noise(lines: Iterable[str]) -> list[str]:
    """``lines`` less what would mislead a reader of the summary (build's TIP)."""
    return [line for line in lines if not line.startswith(BUILD_TIP)]
