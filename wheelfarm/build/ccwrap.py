"""Build profiles, and the compiler wrapper the farm puts in front of gcc/g++.

The farm's flags reach the compiler by *adding* to the command line, never
through ``CFLAGS``: setuptools uses ``$CFLAGS`` instead of the interpreter's
``-DNDEBUG -g -O3``, so exporting it would silently drop the optimization.
:func:`profile_flags` is the one place that decides what a profile adds;
the zig wrapper (:mod:`wheelfarm.build.zigcc`) and the gcc wrapper (:func:`main`,
host and container executors) both call it. The farm's flags come *before*
the build's own, so a project's explicit choice (``-O3``, ``-UNDEBUG``) wins.

The release profile adds ``-O2`` only when the command has no ``-O`` of its
own, ``-DNDEBUG``, and (for gcc) ``-g -grecord-gcc-switches`` so that every
compile unit's ``DW_AT_producer`` records the switches it was really built
with; :mod:`wheelfarm.build.quality` reads them back from the binary.

This file runs as the wrapper itself, inside containers too (the wrapper
script is this source plus one line), so it imports nothing but the standard
library and stays valid Python 3.8.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Mapping, Sequence

# The same names as wheelfarm.plan.profiles (a test checks): this file must stay
# importable on its own, inside containers, so it cannot import them.
PROFILES = ("release", "debug")
DEFAULT_PROFILE = "release"
# Bumped when the generated wrappers or the flags change (part of toolchain ids).
VERSION = "3"  # 2: link-time stripping dropped; 3: imported from wheelfarm.build.ccwrap
PREFIX_MAPS_VAR = "WHEELFARM_PREFIX_MAPS"  # JSON [[old, new], ...] of the job's paths
NAMES = ("cc", "gcc", "c++", "g++")

_OPT = re.compile(r"-O(?:\d+|s|z|g|fast)?")
# Calls that only ask the compiler something; nothing is added to them.
_QUERIES = ("--version", "-dumpversion", "-dumpfullversion", "-dumpmachine", "-v", "--help",
            "-###", "-print-", "--print-")


def optimization(args: Sequence[str]) -> str | None:
    """The ``-O`` option in effect for ``args`` (the last one wins), if any."""
    found = None
    skip = False
    for arg in args:
        if skip:  # the value of -Xlinker/-Xassembler is not the compiler's option
            skip = False
            continue
        if arg in ("-Xlinker", "-Xassembler", "-Xpreprocessor", "-Xclang"):
            skip = True
        elif _OPT.fullmatch(arg):
            found = arg
    return found


def is_query(args: Sequence[str]) -> bool:
    return not args or all(a.startswith(_QUERIES) for a in args)


def profile_flags(args: Sequence[str], profile: str, *,
                  record_switches: bool = True) -> list[str]:
    """What ``profile`` adds in front of a compiler command ``args``.

    ``record_switches`` (gcc) makes the debug info name the real switches;
    zig leaves it off: clang would record the full cc1 line with the job's
    absolute paths, which no prefix map rewrites, and the debug files must be
    reproducible.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown build profile {profile!r}; expected one of {PROFILES}")
    if is_query(args):
        return []
    if profile == "debug":
        return ["-g"] if record_switches else []
    flags = [] if optimization(args) else ["-O2"]
    flags.append("-DNDEBUG")
    if record_switches:
        flags += ["-g", "-grecord-gcc-switches"]
    return flags


# Link-time stripping throws the debug info away before the farm can split it off
# (wheelfarm.build.debuginfo); the farm strips the shipped module itself afterwards.
_STRIP_DRIVER = frozenset({"-s"})
_STRIP_LINKER = frozenset({"-s", "--strip-all", "-S", "--strip-debug"})


def without_stripping(args: Sequence[str]) -> list[str]:
    """``args`` less the options that strip at link time (``-s``, ``-Wl,-s``,
    ``-Wl,--strip-all``, ``-Xlinker --strip-debug`` ...)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _STRIP_DRIVER:
            pass
        elif arg == "-Xlinker" and i + 1 < len(args):
            if args[i + 1] not in _STRIP_LINKER:
                out += [arg, args[i + 1]]
            i += 1
        elif arg.startswith("-Wl,"):
            kept = [p for p in arg[4:].split(",") if p not in _STRIP_LINKER]
            if kept:
                out.append("-Wl," + ",".join(kept))
        else:
            out.append(arg)
        i += 1
    return out


def prefix_map_flags(environ: Mapping[str, str]) -> list[str]:
    """``-ffile-prefix-map`` options for the job's directories, from the environment."""
    raw = environ.get(PREFIX_MAPS_VAR, "")
    if not raw:
        return []
    try:
        pairs = json.loads(raw)
        return [f"-ffile-prefix-map={old}={new}" for old, new in pairs]
    except (ValueError, TypeError):
        return []


def profile_env(profile: str) -> dict[str, str]:
    """Variables that choose the profile for build systems the wrappers cannot reach.

    Cargo under setuptools-rust and maturin builds in release by default; a
    debug build asks for cargo's ``dev`` profile.
    """
    if profile == "debug":
        return {"SETUPTOOLS_RUST_CARGO_PROFILE": "dev", "MATURIN_PEP517_ARGS": "--profile dev"}
    return {}


def command(compiler: str, profile: str, args: Sequence[str],
            environ: Mapping[str, str]) -> list[str]:
    """The real compiler's command line for one call of the wrapper."""
    if is_query(args):
        return [compiler, *args]
    return [compiler, *profile_flags(args, profile), *prefix_map_flags(environ),
            *without_stripping(args)]


def find_compiler(name: str, own_dir: str, path: str) -> str | None:
    """``name`` on ``path``, skipping the wrappers' own directory (no recursion)."""
    if os.sep in name:
        return name
    own = os.path.realpath(own_dir)
    for entry in path.split(os.pathsep):
        if not entry or os.path.realpath(entry) == own:
            continue
        candidate = os.path.join(entry, name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate) \
                and os.path.realpath(os.path.dirname(os.path.realpath(candidate))) != own:
            return candidate
    return None


def wrapper_script(*, python: str, config: dict[str, str], package_root: str | None) -> str:
    """A wrapper for one compiler name. With ``package_root`` it imports this
    module from the farm's own package; without (a container, where the farm
    is not installed), it carries this module's source."""
    if re.search(r"\s", python) or len(python) > 240:
        raise ValueError(f"interpreter path unusable in a #! line: {python!r}")
    head = (f"#!{python} -I\n"
            f"# Generated by wheelfarm (ccwrap version {VERSION}); do not edit.\n")
    call = f"raise SystemExit(main([{json.dumps(config)!r}, *sys.argv[1:]]))\n"
    if package_root is not None:
        return (head + "import sys\n"
                f"sys.path.insert(0, {package_root!r})\n"
                "from wheelfarm.build.ccwrap import main\n" + call)
    with open(__file__, encoding="utf-8") as handle:
        source = handle.read()
    return head + source + "\n\n" + call


def main(argv: list[str] | None = None) -> int:
    """Entry point of the wrapper scripts: ``argv`` is a JSON config
    (``compiler``, ``profile``, ``own_dir``) followed by the compiler's arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config = json.loads(argv[0])
        name, profile, own_dir = config["compiler"], config["profile"], config["own_dir"]
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}")
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        print(f"wheelfarm-ccwrap: bad configuration: {exc}", file=sys.stderr)
        return 2
    compiler = find_compiler(name, own_dir, os.environ.get("PATH", ""))
    if compiler is None:
        print(f"wheelfarm-ccwrap: {name} not found on PATH", file=sys.stderr)
        return 127
    cmd = command(compiler, profile, argv[1:], os.environ)
    try:
        os.execv(compiler, cmd)
    except OSError as exc:
        print(f"wheelfarm-ccwrap: cannot run {compiler}: {exc}", file=sys.stderr)
    return 127


def write_wrappers(directory: str, *, python: str, profile: str,
                   compilers: Mapping[str, str], package_root: str | None) -> dict[str, str]:
    """Write one wrapper per name in ``compilers`` (wrapper name -> real compiler)
    into ``directory``, only where the text changed (another job may be running
    one right now: the new file replaces it atomically). Returns name -> path."""
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for name, compiler in compilers.items():
        config = {"compiler": compiler, "profile": profile, "own_dir": directory}
        text = wrapper_script(python=python, config=config, package_root=package_root)
        path = os.path.join(directory, name)
        paths[name] = path
        try:
            with open(path, encoding="utf-8") as handle:
                if handle.read() == text:
                    continue
        except OSError:
            pass
        # Per thread too: a local build's jobs run as threads of one process.
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    return paths
