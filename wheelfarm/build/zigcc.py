"""zig as the C/C++ compiler and as rustc's linker, for manylinux and macOS builds.

Build backends call the compiler with the flags the *host* Python was built
with (Debian's, pyenv's, Fedora's) and rustc calls its linker as if it were
gcc. zig's clang driver and its lld front end reject a handful of those, so
the wrapper scripts written by :func:`wrapper_script` call :func:`main`, which
rewrites the argument list with :func:`translate` (pure, driven by the
:data:`RULES` table) and execs the zig binary. Every decision is written to
stderr as one ``wheelfarm-zigcc:`` line, which ends up in the job log.

This module runs once per compiler invocation inside someone else's build, so
it imports nothing but the standard library.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from wheelfarm.build import ccwrap, zigmusl

Mode = Literal["cc", "c++", "linker"]
MODES: tuple[Mode, ...] = ("cc", "c++", "linker")
PREFIX = zigmusl.PREFIX  # every note the wrapper writes starts with it

# Bumped whenever the generated scripts or the rules change, so a farm's cached
# wrapper directory is rewritten (it is part of the prepare() marker).
SCRIPT_VERSION = "8"  # 2: profiles (ccwrap); 3: GNU build-id; 4: no strip; 5: wheelfarm.build.zigcc
# 6: macOS targets (on another branch: musl); 7: macOS modules without their debug map;
# 8: macOS and musl together


@dataclass(frozen=True)
class Rule:
    """One rewrite. ``pattern`` must match a whole option; an option that takes a
    separate value is matched as ``"option value"``. ``replace`` holds
    ``re.Match.expand`` templates; empty means drop."""

    scope: Literal["compiler", "linker"]
    pattern: str
    replace: tuple[str, ...]
    reason: str
    shared_only: bool = False


_Z_UNSUPPORTED = (
    r"(?:no)?separate-code|ibt|shstk|cet-report=\S*|text|keep-text-section-prefix"
)
_Z_REASON = "zig's linker rejects this -z keyword; it only hardens or lays out the binary"
_Z_RELR = r"(?:no)?pack-relative-relocs"
_RELR_REASON = "zig's linker rejects it, and DT_RELR needs glibc 2.36 anyway"
_STRIP_REASON = ("the farm splits the debug info off and strips the module itself, "
                 "as build.debug-symbols says")

RULES: tuple[Rule, ...] = (
    # --- compiler driver ---
    Rule("compiler", r"-s", (), _STRIP_REASON),
    Rule("compiler", r"-flto=(?:auto|jobserver|\d+)", (),
         "zig cc rejects gcc's -flto=auto/jobserver/N; built without LTO"),
    Rule("compiler", r"-march=x86-64", ("-march=x86_64",),
         "zig spells CPU names with underscores"),
    Rule("compiler", r"-march=x86-64-v([234])", (r"-march=x86_64_v\1",),
         "zig spells CPU names with underscores"),
    Rule("compiler", r"-march=([a-z0-9]+)-([a-z0-9]+)", (r"-march=\1_\2",),
         "zig spells CPU names with underscores; a hyphen would subtract a feature"),
    Rule("compiler", r"-mtune=\S*", (),
         "tuning never changes correctness, and zig reads -mtune=generic as a CPU without SSE"),
    Rule("compiler", r"-Wp,(-[DU][^,]+)", (r"\1",),
         "zig cc rejects -Wp,; the define goes to the compiler directly"),
    Rule("compiler", r"-fuse-ld=\S*", (), "zig always links with its own lld"),
    Rule("compiler", r"-B ?/.*", (),
         "zig uses its own tools; rustc points -B at its gcc-ld shim"),
    Rule("compiler", r"-static-lib(?:gcc|stdc\+\+)", (),
         "zig links its libunwind and libc++ statically anyway"),
    Rule("compiler", r"-specs=\S*", (), "gcc spec files mean nothing to zig"),
    Rule("compiler", r"--target=\S*|-target \S+", (),
         "wheelfarm sets the zig target; cc-rs passes a Rust triple zig cannot parse"),
    Rule("compiler", r"-lgcc_s", ("-lunwind",),
         "zig targets have no libgcc_s; zig's libunwind provides _Unwind_*, which rustc wants"),
    Rule("compiler", r"-f(?:PIE|pie)", ("-fPIC",),
         "zig refuses PIE code in a shared object", shared_only=True),
    Rule("compiler", r"-pie", (), "zig refuses -pie together with -shared", shared_only=True),
    Rule("compiler",
         r"-f(?:no-)?(?:var-tracking(?:-assignments)?|ipa-\S+|gnu-unique|graphite\S*|loop-\S+"
         r"|reorder-blocks-and-partition|keep-inline-dllexport|harden-\S+)",
         (), "gcc-only optimisation or debug-info option that zig's clang rejects"),
    Rule("compiler", rf"-z ?(?:{_Z_UNSUPPORTED})", (), _Z_REASON),
    Rule("compiler", rf"-z ?{_Z_RELR}", (), _RELR_REASON),
    # --- linker (the parts of -Wl, and -Xlinker) ---
    Rule("linker", r"-s|--strip-all|-S|--strip-debug", (), _STRIP_REASON),
    Rule("linker", r"-Bsymbolic-functions", (),
         "zig's linker rejects it; it only stops interposition of the module's own functions"),
    Rule("linker", r"--exclude-libs[= ]\S+", (),
         "zig's linker rejects it; it only hides symbols of linked static archives"),
    Rule("linker", r"-O\d*", (), "zig ignores linker optimisation levels and warns"),
    Rule("linker", rf"-z ?(?:{_Z_UNSUPPORTED})", (), _Z_REASON),
    Rule("linker", rf"-z ?{_Z_RELR}", (), _RELR_REASON),
    Rule("linker", r"-h (\S+)", ("-soname", r"\1"), "zig's linker only knows the long spelling"),
    Rule("linker",
         r"--icf=\S+|-Map[= ]\S+|--threads=\S+|--warn-common|--gdb-index|--no-keep-memory"
         r"|--reduce-memory-overheads|--(?:no-)?relax|--(?:no-)?copy-dt-needed-entries"
         r"|--push-state|--pop-state|--sort-common",
         (), "zig's linker rejects it; it only affects link speed, diagnostics or size"),
)

# Options whose value is the next argument (so the value is never mistaken for
# an input file, and a rule can drop both).
_COMPILER_VALUE_OPTS = frozenset({
    "-o", "-I", "-D", "-U", "-x", "-MF", "-MT", "-MQ", "-include", "-imacros", "-isystem",
    "-iquote", "-idirafter", "-isysroot", "-L", "-l", "-B", "-target", "-Xclang",
    "-Xassembler", "-Xpreprocessor", "-u", "-z", "-e", "-T",
})
_LINKER_VALUE_OPTS = frozenset({
    "-z", "-h", "-soname", "-rpath", "-rpath-link", "-R", "-o", "-e", "--entry", "-T", "-Map",
    "--exclude-libs", "--version-script", "--dynamic-list", "-init", "-fini", "--defsym",
    "-y", "-u", "--undefined", "--wrap", "-m", "-L", "-l",
})
_CXX_SUFFIXES = (".cc", ".cp", ".cxx", ".cpp", ".CPP", ".c++", ".C", ".ii")


def zig_target(arch: str, glibc: tuple[int, int] | None) -> str:
    """The zig target triple: ``x86_64-linux-gnu.2.17`` for a manylinux target,
    ``x86_64-linux-musl`` (``glibc`` None) for a musllinux one."""
    if glibc is None:
        return f"{arch}-linux-musl"
    return f"{arch}-linux-gnu.{glibc[0]}.{glibc[1]}"


def zig_macos_target(arch: str, macos: tuple[int, int]) -> str:
    """The zig target for a macOS wheel tag's arch and version, e.g. ``aarch64-macos.11.0``."""
    return f"{'aarch64' if arch == 'arm64' else arch}-macos.{macos[0]}.{macos[1]}"


def is_macos(target: str) -> bool:
    return "-macos" in target


def _for_macos(args: list[str], notes: list[str]) -> list[str]:
    """A Linux-style link line made into a macOS extension module's.

    An extension module leaves the Python API undefined: on Linux the loader
    resolves it from the interpreter, on macOS only ``-undefined
    dynamic_lookup`` allows that. ``-bundle`` (what CPython on macOS asks
    for) crashes zig's linker; a dylib loads the same way.
    """
    out = []
    for arg in args:
        if arg == "-bundle":
            notes.append(f"{PREFIX}: -bundle -> -shared (zig's Mach-O linker crashes on "
                         "-bundle; Python loads a dylib the same way)")
            arg = "-shared"
        out.append(arg)
    if "-shared" in out and "dynamic_lookup" not in " ".join(out):
        out += ["-undefined", "dynamic_lookup"]
        notes.append(f"{PREFIX}: added -undefined dynamic_lookup (a macOS extension module "
                     "takes the Python API from the interpreter that loads it)")
    return out


@dataclass
class _Linker:
    """One ``-Wl,a,b`` or ``-Xlinker a`` argument, split into linker pieces."""

    style: Literal["Wl", "Xlinker"]
    pieces: list[str]


def _units(pieces: list[tuple[int, int, str]], value_opts: frozenset[str]) -> list[list[int]]:
    """Group indexes of ``pieces`` into options with their separate value."""
    units: list[list[int]] = []
    i = 0
    while i < len(pieces):
        if pieces[i][2] in value_opts and i + 1 < len(pieces):
            units.append([i, i + 1])
            i += 2
        else:
            units.append([i])
            i += 1
    return units


def _apply(text: str, scope: str, shared: bool) -> tuple[Rule, list[str]] | None:
    for rule in RULES:
        if rule.scope != scope or (rule.shared_only and not shared):
            continue
        m = re.fullmatch(rule.pattern, text)
        if m:
            return rule, [m.expand(t) for t in rule.replace]
    return None


def _note(shown: str, new: list[str], rule: Rule, linker: bool = False) -> str:
    if not new:
        return f"{PREFIX}: dropped {shown} ({rule.reason})"
    result = "-Wl," + ",".join(new) if linker else " ".join(new)
    return f"{PREFIX}: {shown} -> {result} ({rule.reason})"


def translate(args: Sequence[str], mode: Mode,
              macos: bool = False) -> tuple[str, list[str], list[str]]:
    """Rewrite a gcc-style argument list for zig.

    Returns ``(driver, args, notes)``: ``driver`` is ``"cc"`` or ``"c++"`` (a
    ``cc`` call that compiles C++ sources is upgraded, because setuptools
    before 72 compiles C++ files with ``CC`` and ``zig cc`` has no libc++
    headers), and ``notes`` has one line per decision.
    """
    notes: list[str] = []
    if macos:
        args = _for_macos(list(args), notes)
    shared = "-shared" in args
    items: list[str | _Linker] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-Wl,"):
            items.append(_Linker("Wl", arg[4:].split(",")))
        elif arg == "-Xlinker" and i + 1 < len(args):
            items.append(_Linker("Xlinker", [args[i + 1]]))
            i += 1
        elif arg in _COMPILER_VALUE_OPTS and i + 1 < len(args):
            unit = f"{arg} {args[i + 1]}"
            hit = _apply(unit, "compiler", shared)
            if hit:
                notes.append(_note(unit, hit[1], hit[0]))
                items.extend(hit[1])
            else:
                items.extend((arg, args[i + 1]))
            i += 1
        else:
            hit = _apply(arg, "compiler", shared)
            if hit:
                notes.append(_note(arg, hit[1], hit[0]))
                items.extend(hit[1])
            else:
                items.append(arg)
        i += 1

    # A linker option and its value may sit in separate -Wl/-Xlinker arguments.
    flat = [(n, k, piece) for n, item in enumerate(items) if isinstance(item, _Linker)
            for k, piece in enumerate(item.pieces)]
    new_pieces: dict[tuple[int, int], list[str]] = {}
    for group in _units(flat, _LINKER_VALUE_OPTS):
        text = " ".join(flat[j][2] for j in group)
        hit = _apply(text, "linker", shared)
        if hit is None:
            continue
        shown = [flat[j][2] for j in group]
        notes.append(_note("-Wl," + ",".join(shown), hit[1], hit[0], linker=True))
        for pos, j in enumerate(group):
            new_pieces[flat[j][:2]] = hit[1] if pos == 0 else []

    out: list[str] = []
    for n, item in enumerate(items):
        if isinstance(item, _Linker):
            kept = [p for k, piece in enumerate(item.pieces)
                    for p in new_pieces.get((n, k), [piece])]
            if item.style == "Xlinker":
                for piece in kept:
                    out += ["-Xlinker", piece]
            elif kept:
                out.append("-Wl," + ",".join(kept))
        else:
            out.append(item)

    # zig links without a GNU build-id, which debuginfod and the split debug files key on.
    # (Mach-O has its LC_UUID, which zig always writes.)
    if shared and not macos and not any("--build-id" in a for a in out):
        out.append("-Wl,--build-id=sha1")
    if shared and macos:
        # A Mach-O module's debug map (N_OSO stabs) names the build's object files and
        # their mtimes: useless without them, which no wheel ships, and different in
        # every build. Stripped, two builds give the same bytes (LC_UUID included).
        out.append("-Wl,-S")
        notes.append(f"{PREFIX}: added -Wl,-S (the debug map points at this build's "
                     "object files; without it the module is not reproducible)")
    driver = "c++" if mode == "c++" else "cc"
    if mode == "cc":
        source = _cxx_source(out)
        if source:
            driver = "c++"
            notes.append(f"{PREFIX}: compiling {source} with zig c++ "
                         "(zig cc has no C++ standard library headers)")
    return driver, out, list(dict.fromkeys(notes))


def _cxx_source(args: Sequence[str]) -> str | None:
    """The first C++ input in ``args`` (by suffix or ``-x c++``), if any."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-xc++", "-xc++-header") or (
                arg == "-x" and i + 1 < len(args) and args[i + 1].startswith("c++")):
            return "-x c++ input"
        if arg in _COMPILER_VALUE_OPTS:
            i += 2
            continue
        if not arg.startswith("-") and arg.endswith(_CXX_SUFFIXES):
            return arg
        i += 1
    return None


def command(zig: str, target: str, mode: Mode, args: Sequence[str], profile: str = "release",
            environ: Mapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """The full zig command line for one call of a wrapper, and the notes.

    The profile's flags go in front of the build's own (see
    :func:`wheelfarm.build.ccwrap.profile_flags`): ``zig cc`` without ``-O`` is
    zig's Debug mode, with UBSan, and the ``-O`` of a link line decides the
    mode of the libc++ and runtimes zig links in.
    """
    driver, rest, notes = translate(args, mode, macos=is_macos(target))
    added = [*ccwrap.profile_flags(rest, profile, record_switches=False),
             *ccwrap.prefix_map_flags(environ if environ is not None else {})]
    return [zig, driver, "-target", target, *added, *rest], notes


def wrapper_script(*, python: str, package_root: str, mode: Mode, zig: str, target: str,
                   cache_dir: str, profile: str = "release") -> str:
    """A wrapper script that calls :func:`main` with everything baked in.

    ``python -I`` ignores PYTHONPATH and friends: an isolated build environment
    (pip's sitecustomize, a different Python's site-packages) must not leak
    into the farm's own interpreter. ``package_root`` is the directory that
    holds the ``wheelfarm`` package.
    """
    if re.search(r"\s", python) or len(python) > 240:
        raise ValueError(f"interpreter path unusable in a #! line: {python!r}")
    config = json.dumps({"mode": mode, "zig": zig, "target": target, "cache_dir": cache_dir,
                         "profile": profile})
    return (
        f"#!{python} -I\n"
        f"# Generated by wheelfarm (zigcc script version {SCRIPT_VERSION}); do not edit.\n"
        "import sys\n"
        f"sys.path.insert(0, {package_root!r})\n"
        "from wheelfarm.build.zigcc import main\n"
        f"raise SystemExit(main([{config!r}, *sys.argv[1:]]))\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the wrapper scripts: ``argv`` is a JSON config
    (``mode``, ``zig``, ``target``, ``cache_dir``) followed by the compiler
    arguments. Writes its notes to stderr and execs zig; returns only on error.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(f"{PREFIX}: missing configuration", file=sys.stderr)
        return 2
    try:
        config = json.loads(argv[0])
        mode = config["mode"]
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        zig, target, cache_dir = str(config["zig"]), str(config["target"]), config["cache_dir"]
        profile = str(config.get("profile", "release"))
        if profile not in ccwrap.PROFILES:
            raise ValueError(f"unknown profile {profile!r}")
    except (ValueError, KeyError, TypeError) as exc:
        print(f"{PREFIX}: bad configuration: {exc}", file=sys.stderr)
        return 2
    cmd, notes = command(zig, target, mode, argv[1:], profile, os.environ)
    for note in notes:
        print(note, file=sys.stderr)
    sys.stderr.flush()
    # Some build systems hand compilers a scrubbed environment; the cache must
    # still land in the farm's cache dir, never in $HOME.
    os.environ["ZIG_GLOBAL_CACHE_DIR"] = os.environ["ZIG_LOCAL_CACHE_DIR"] = str(cache_dir)
    libc = zigmusl.libc_name(target)
    output = zigmusl.shared_output(argv[1:]) if libc else None
    if libc and output:
        return zigmusl.link(cmd, output, libc)
    try:
        os.execv(zig, cmd)
    except OSError as exc:
        print(f"{PREFIX}: cannot run {zig}: {exc}", file=sys.stderr)
        return 127
