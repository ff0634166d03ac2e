"""Helpers shared by the benchmarks: timing, fresh farm dirs, the BENCHMARKS.md writer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = ROOT / "tests" / "fixtures" / "projects"
WHEELFARM = [sys.executable, "-m", "wheelfarm"]


def sh(argv: Sequence[str | os.PathLike[str]], **kw: object) -> float:
    """Run a command (failing loudly) and return its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([os.fspath(a) for a in argv], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - start


def scratch(name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"wheelfarm-bench-{name}-"))
    return path


def clean(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def python_for(tag: str) -> str:
    from wheelfarm.plan import pythons

    found = pythons.discover()
    if tag not in found:
        raise SystemExit(f"bench needs {tag}; found {', '.join(found)}")
    return str(found[tag])


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
