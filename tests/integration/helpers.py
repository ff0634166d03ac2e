"""Running the real CLI and real pip, the way a user does."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from wheelfarm.build.executors import engine as engines
from wheelfarm.plan.config import LOCAL_IMAGE

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = ROOT / "tests" / "fixtures" / "projects"
RECIPES = ROOT / "recipes"


def wheelfarm(*args: str | os.PathLike[str], cwd: Path,
              env: dict[str, str] | None = None, timeout: float = 1800,
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wheelfarm", *map(os.fspath, args)],
        cwd=cwd, env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that must have succeeded (else its output is the failure)."""
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def python_for(tag: str) -> Path:
    from wheelfarm.plan import pythons

    found = pythons.discover()
    if tag not in found:
        pytest.skip(f"{tag} is not installed on this machine")
    return found[tag]


def isolated_pip_env() -> dict[str, str]:
    """pip that reads no machine configuration: only the index we name can supply."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    cert = os.environ.get("PIP_CERT")
    if cert:
        env["PIP_CERT"] = cert
    return env


def pip_install_from_index(tag: str, venv: Path, index: Path, *names: str,
                           extra_index: str | None = None) -> None:
    """Fresh venv of ``tag``; install ``names`` from ``index`` (file://) with real pip."""
    subprocess.run([python_for(tag), "-m", "venv", venv], check=True)
    argv = [venv / "bin" / "python", "-m", "pip", "install", "--no-cache-dir",
            "--index-url", index.as_uri()]
    if extra_index:
        argv += ["--extra-index-url", extra_index]
    subprocess.run([*map(os.fspath, argv), *names], check=True, env=isolated_pip_env(),
                   capture_output=True, text=True)


def tree_digest(path: Path) -> dict[str, str]:
    """Every file under ``path`` with its sha256, to prove nothing changed."""
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*")) if p.is_file()
    }


def require(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        pytest.skip(f"{tool} is not installed")
    return found


def container_engine() -> engines.Engine:
    """The container engine, holding the local build image (`make image`); else the test
    is skipped (which fails it in CI)."""
    try:
        found = engines.connect(None)
    except engines.EngineUnavailable as exc:
        pytest.skip(f"no container engine: {exc}")
    try:
        found.client.images.get(LOCAL_IMAGE)
    except Exception:
        pytest.skip(f"{LOCAL_IMAGE} is missing: run `make image`")
    return found


@contextlib.contextmanager
def serving(root: Path, cwd: Path) -> Iterator[str]:
    """``wheelfarm serve ROOT`` on a free loopback port, answering; yields its base URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "wheelfarm", "serve", str(root), "--host", "127.0.0.1",
         "--port", "0"], cwd=cwd,
        env={**os.environ, "COLUMNS": "200"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("serving "), line + (server.stderr.read() if server.stderr else "")
        base = line.split(" at ", 1)[1].strip().removesuffix("/simple/")
        for _ in range(200):
            try:
                httpx.get(base + "/simple/", timeout=2)
                break
            except httpx.HTTPError:
                assert server.poll() is None, "wheelfarm serve exited"
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


# A setup.py that tries to append to each path of ``targets`` (Python expressions,
# given the lines before them) and prints "HOSTILE wrote" or "HOSTILE refused"
# for each, then builds the fastadd fixture as usual.
_HOSTILE_SETUP = """import os, pathlib
from setuptools import Extension, setup
{preamble}
targets = [{targets}]
for path in targets:
    try:
        with open(path, "a") as fh:
            fh.write("poisoned {token}")
        print("HOSTILE wrote", path, flush=True)
    except OSError as exc:
        print("HOSTILE refused", path, exc, flush=True)
setup(ext_modules=[Extension("fastadd", sources=["src/fastadd.c"], libraries=["m"])])
"""


def hostile_fastadd(dest: Path, token: str, preamble: str, targets: str) -> Path:
    """The fastadd fixture copied to ``dest`` with a setup.py that writes ``token``
    into each of ``targets`` before it builds (see ``_HOSTILE_SETUP``)."""
    shutil.copytree(PROJECTS / "fastadd", dest)
    (dest / "setup.py").write_text(_HOSTILE_SETUP.format(
        preamble=preamble, targets=targets.replace("TOKEN", token), token=token))
    return dest
