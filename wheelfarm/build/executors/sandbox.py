"""Sandboxing of a host job's project code with bubblewrap.

A clean environment alone does not keep a farm's secrets from a ``setup.py``:
the farm's own process is readable through ``/proc/<pid>/environ`` (no Yama
restriction here), and the build runs as the farm's user, so it can read the
farm's config, keys and state. Host and zig jobs therefore run every command
that executes project code (``before-build``, the PEP 517 build, the backend's
requirements, the tests) inside ``bwrap``: its own pid namespace, the farm's
private directories replaced by empty ones, the whole file system read-only
except the job's work dir, and no network unless the recipe asks for it.

Farm tools (``venv``, the farm's pip installing build and test requirements,
auditwheel) run outside the sandbox, but with the same environment allowlist.

``WHEELFARM_SANDBOX`` chooses: ``auto`` (default; without a working bwrap the
job log says the build is not isolated), ``require`` (a job fails without it)
or ``off``.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wheelfarm.errors import ConfigError

MODE_ENV = "WHEELFARM_SANDBOX"
Mode = Literal["auto", "require", "off"]
MODES: tuple[Mode, ...] = ("auto", "require", "off")

# Variables of the farm's environment any command may see: locale, PATH and
# the CA settings TLS needs behind this machine's proxy. Nothing else passes:
# the farm's tokens, passphrases, keys and cloud credentials live in its env.
COMMON_VARS = ("PATH", "LANG", "LANGUAGE", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR", "PIP_CERT",
               "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PYENV_ROOT", "RUSTUP_HOME")
COMMON_PREFIXES = ("LC_",)
# The farm's pip installs build and test requirements: it needs its index
# settings, its cache and the proxy.
PROXY_VARS = ("http_proxy", "https_proxy", "no_proxy", "all_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
FARM_TOOL_VARS = ("HOME", "USER", "LOGNAME", "TMPDIR", "XDG_CACHE_HOME", *PROXY_VARS)
FARM_TOOL_PREFIXES = ("PIP_", "UV_")


def mode(environ: Mapping[str, str] | None = None) -> Mode:
    value = (os.environ if environ is None else environ).get(MODE_ENV, "auto") or "auto"
    for known in MODES:
        if value == known:
            return known
    raise ConfigError(f"{MODE_ENV}={value!r}: expected one of {', '.join(MODES)}")


def allowed_env(environ: Mapping[str, str], *, farm_tool: bool,
                network: bool = False) -> dict[str, str]:
    """The part of ``environ`` a command may inherit (an allowlist, never a blocklist).

    A farm tool (pip, auditwheel) also gets pip's settings, HOME and the
    proxy; project code gets the proxy only when its recipe allows the network.
    """
    names = set(COMMON_VARS)
    prefixes: tuple[str, ...] = COMMON_PREFIXES
    if farm_tool:
        names.update(FARM_TOOL_VARS)
        prefixes = (*prefixes, *FARM_TOOL_PREFIXES)
    elif network:
        names.update(PROXY_VARS)
    return {k: v for k, v in environ.items() if k in names or k.startswith(prefixes)}


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def unavailable() -> str | None:
    """Why bwrap cannot sandbox here (missing, or namespaces refused), or None if it can."""
    bwrap = find_bwrap()
    if bwrap is None:
        return "bwrap (Debian package bubblewrap) is not installed"
    try:
        result = subprocess.run(
            [bwrap, "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/", "--proc", "/proc",
             "--dev", "/dev", "true"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap cannot run: {exc}"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        return f"bwrap cannot create namespaces here: {last}"
    return None


def private_paths(environ: Mapping[str, str]) -> list[Path]:
    """The farm user's own secrets that every sandbox hides: HOME (keys, cloud and
    index credentials, ssh) and GNUPGHOME wherever it is."""
    paths = [Path(environ.get("HOME") or Path.home())]
    if environ.get("GNUPGHOME"):
        paths.append(Path(environ["GNUPGHOME"]))
    return paths


def rustup_home(environ: Mapping[str, str]) -> Path | None:
    """rustup's toolchains, which its ``cargo`` proxies on PATH need (by default in
    HOME, which the sandbox hides; ``~/.cargo`` itself may hold registry tokens)."""
    home = Path(environ.get("RUSTUP_HOME") or Path(environ.get("HOME") or Path.home())
                / ".rustup")
    return home if home.is_dir() else None


def runtime_paths(interpreters: Iterable[str | os.PathLike[str]],
                  environ: Mapping[str, str]) -> list[Path]:
    """What a build must still read inside hidden directories: the interpreters'
    installations (pyenv lives in HOME), the directories on PATH (``~/.cargo/bin``),
    rustup's toolchains, and the farm's own Python and package (the zig compiler
    wrappers run them)."""
    paths = {Path(sys.prefix), Path(sys.base_prefix),
             Path(__file__).resolve().parent.parent.parent}
    paths.update(Path(p) for p in environ.get("PATH", "").split(os.pathsep) if p.startswith("/"))
    rustup = rustup_home(environ)
    if rustup is not None:
        paths.add(rustup)
    for interp in interpreters:
        real = Path(os.path.realpath(interp))
        paths.add(real.parent.parent)  # <prefix>/bin/pythonX.Y -> <prefix>
    return sorted(paths)


@dataclass(frozen=True)
class Sandbox:
    """One job's sandbox: what it hides, shows read-only and lets it write."""

    hidden: tuple[Path, ...]
    readable: tuple[Path, ...]
    writable: tuple[Path, ...]
    network: bool
    bwrap: str = "bwrap"
    # (shared dir, job's scratch dir): the job sees the shared dir through an overlay
    # whose writes land in the scratch dir (see overlay_ready).
    overlays: tuple[tuple[Path, Path], ...] = ()
    # (shared dir, job's own dir) where no overlay can be mounted: the job sees its
    # own (empty) dir in the shared one's place and never the shared one.
    stand_ins: tuple[tuple[Path, Path], ...] = ()

    def wrap(self, argv: Sequence[str], cwd: Path) -> list[str]:
        """``argv`` as a bwrap command line (bwrap inherits the caller's env as is)."""
        cmd = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-pid",
               "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if not self.network:
            cmd.append("--unshare-net")
        cmd += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        hidden = _existing(self.hidden)
        cmd += _hide(hidden)
        # Nothing shown again may bring a hidden path back (PATH holding HOME itself).
        shown = [s for s in _existing(self.readable) if not any(_inside(h, s) for h in hidden)]
        for path in shown:
            cmd += ["--ro-bind", str(path), str(path)]
        for path in _existing(self.writable):
            cmd += ["--bind", str(path), str(path)]
        mounts: list[str] = []
        for lower, scratch in self.overlays:
            lower = Path(os.path.realpath(lower))
            merged = scratch / "merged"
            mounts.append(shlex.join([
                "mount", "-t", "overlay", "overlay", "-o",
                f"lowerdir={lower},upperdir={scratch / 'upper'},workdir={scratch / 'work'}",
                str(merged)]))
            cmd += ["--bind", str(merged), str(lower)]
        for shared, own in self.stand_ins:
            cmd += ["--bind", str(own), os.path.realpath(shared)]
        # The empty stand-ins must not become a scratch space shared by the job's commands.
        for path in hidden:
            if path.is_dir():
                cmd += ["--remount-ro", str(path)]
        cmd += ["--chdir", str(cwd), "--", *[str(a) for a in argv]]
        if mounts:
            # The overlay is mounted in a private mount namespace of its own, so it
            # vanishes with the command and nothing is left to unmount.
            # Not root: a user namespace of its own may mount an overlay (Linux 5.11+).
            user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
            cmd = ["unshare", *user, "--mount", "--propagation", "private", "sh", "-c",
                   " && ".join([*mounts, 'exec "$@"']), "sh", *cmd]
        return cmd


def overlay_ready(lower: Path, scratch: Path) -> bool:
    """Make ``scratch`` ready to hold a job's overlay over the shared ``lower``.

    False where no overlay can be mounted (no ``unshare``; not root and no
    unprivileged overlay in a user namespace) or the paths cannot be written
    into mount options.
    """
    paths = (os.path.realpath(lower), str(scratch))
    if shutil.which("unshare") is None or not Path(paths[0]).is_dir():
        return False
    if os.geteuid() != 0 and not _user_overlay():
        return False
    if any(c in p for p in paths for c in ",:\\ \n"):
        return False
    for sub in ("upper", "work", "merged"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    return True


@functools.cache
def _user_overlay() -> bool:
    """Whether this user may mount an overlay inside a user namespace of its own."""
    with tempfile.TemporaryDirectory(prefix="wheelfarm-overlay-") as tmp:
        for sub in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(tmp, sub))
        opts = f"lowerdir={tmp}/lower,upperdir={tmp}/upper,workdir={tmp}/work"
        try:
            result = subprocess.run(
                ["unshare", "--user", "--map-root-user", "--mount", "mount", "-t", "overlay",
                 "overlay", "-o", opts, f"{tmp}/merged"],
                capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0


def _existing(paths: Iterable[Path]) -> list[Path]:
    seen: list[Path] = []
    for path in paths:
        real = Path(os.path.realpath(path))
        if real.exists() and real not in seen:
            seen.append(real)
    return seen


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _hide(paths: Sequence[Path]) -> list[str]:
    args: list[str] = []
    # Outer directories first, so that a later mount is not buried by an earlier one.
    for path in sorted(paths, key=lambda p: len(p.parts)):
        args += (["--tmpfs", str(path)] if path.is_dir()
                 else ["--ro-bind", "/dev/null", str(path)])
    return args
