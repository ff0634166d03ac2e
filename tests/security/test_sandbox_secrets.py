"""A hostile build must not reach the farm's secrets (issue 13, item 3).

The farm runs with canary secrets in its environment, its config, its state
dir and GNUPGHOME. A recipe whose ``before-build``, ``setup.py`` and test
command try ``env``, every ``/proc/<pid>/environ``, reading those files,
writing into the shared cache and calling a listener on loopback is built
once with the host executor (real gcc, real pip). The hostile steps prove they
ran by writing markers into the wheel; then the job log, the wheel, its
provenance and every file of the farm's state are scanned for the canaries.
"""

from __future__ import annotations

import os
import socket
import textwrap
import threading
import zipfile
from pathlib import Path

import pytest

from wheelfarm.build.executors.zig import find_zig

from ..integration.helpers import require, wheelfarm

pytestmark = pytest.mark.integration

CANARIES = {
    "WHEELFARM_TOKEN": "canary-token-7f3a1c",
    "WHEELFARM_SIGN_PASSPHRASE": "canary-passphrase-92be40",
    "WHEELFARM_SIGN_KEY": "canary-signkey-0d5e77",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-4b8c21",
    "WHEELFARM_HOOK_SECRET": "canary-webhook-secret-3e9d70",  # [[notify]] secret-env
}
CONFIG_CANARY = "canary-config-5a9e13"
STATE_CANARY = "canary-statefile-c61d08"
GNUPG_CANARY = "canary-gnupg-e2f4b9"
ALL = [*CANARIES.values(), CONFIG_CANARY, STATE_CANARY, GNUPG_CANARY]

# Runs in before-build, in setup.py and in the test command: dumps what it can
# reach to stdout (the job log) and into the package (the wheel).
PROBE = r'''
import glob, os, socket, sys

def attempt(stage):
    found = []
    found.append("ENV " + repr(sorted(os.environ.items())))
    for path in glob.glob("/proc/[0-9]*/environ"):
        try:
            with open(path, "rb") as fh:
                found.append(path + " " + repr(fh.read()))
        except OSError as exc:
            found.append(path + " denied " + type(exc).__name__)
    for path in ["@FARM@" + "/wheelfarm.toml",
                 "@FARM@" + "/.wheelfarm/secret.txt",
                 "@GNUPG@" + "/private.key"]:
        try:
            found.append(path + " " + open(path).read())
        except OSError as exc:
            found.append(path + " unreadable " + type(exc).__name__)
    venv = os.environ.get("VIRTUAL_ENV", "")
    for target in {venv, os.path.dirname(venv), os.path.dirname(os.path.dirname(venv)),
                   "@CACHE@", os.environ.get("ZIG_GLOBAL_CACHE_DIR", "")}:
        if not target:
            continue
        try:
            with open(os.path.join(target, "pwned-" + stage), "w") as fh:
                fh.write("hostile")
            found.append("WROTE " + target)
        except OSError as exc:
            found.append("write denied " + target + " " + type(exc).__name__)
    try:
        socket.create_connection(("127.0.0.1", @PORT@), timeout=3).close()
        found.append("NETWORK reached")
    except OSError as exc:
        found.append("network refused " + type(exc).__name__)
    text = "\n".join(found)
    print(f"HOSTILE-{stage}-RAN\n" + text)
    return text

if __name__ == "__main__":
    stage = sys.argv[1]
    text = attempt(stage)
    if stage == "before":
        with open("hostile/before.txt", "w") as fh:
            fh.write("HOSTILE-before-RAN\n" + text)
'''

SETUP = '''
import probe
from setuptools import Extension, setup
with open("hostile/setup.txt", "w") as fh:
    fh.write("HOSTILE-setup-RAN\\n" + probe.attempt("setup"))
setup(name="hostile", version="1.0", packages=["hostile"],
      package_data={"hostile": ["*.txt"]},
      ext_modules=[Extension("hostile._native", ["native.c"])])
'''

NATIVE = '''
#include <Python.h>
static struct PyModuleDef m = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&m); }
'''


def _listener() -> tuple[socket.socket, list[bool]]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(1.0)
    hits: list[bool] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            hits.append(True)
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    return server, hits


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize(("executor", "target"), [("host", "native"),
                                                   ("zig", "manylinux_2_17_x86_64")])
def test_a_hostile_build_reaches_no_secret(tmp_path: Path, executor: str, target: str) -> None:
    require("gcc")
    if executor == "zig" and find_zig() is None:
        pytest.skip("zig (the ziglang package) is not installed")
    farm, cache, gnupg = tmp_path / "farm", tmp_path / "cache", tmp_path / "gnupg"
    project = tmp_path / "hostile"
    for d in (farm / ".wheelfarm", cache, gnupg, project / "hostile"):
        d.mkdir(parents=True)
    (farm / "wheelfarm.toml").write_text(f"# {CONFIG_CANARY}\njobs = 1\n")
    (farm / ".wheelfarm" / "secret.txt").write_text(STATE_CANARY)
    (gnupg / "private.key").write_text(GNUPG_CANARY)
    server, hits = _listener()
    port = server.getsockname()[1]
    probe = (PROBE.replace("@FARM@", str(farm)).replace("@GNUPG@", str(gnupg))
             .replace("@CACHE@", str(cache)).replace("@PORT@", str(port)))
    (project / "probe.py").write_text(probe)
    (project / "setup.py").write_text(SETUP)
    (project / "native.c").write_text(NATIVE)
    (project / "hostile" / "__init__.py").write_text("")
    (project / "hostile" / "probe.py").write_text(probe)
    recipe = farm / "hostile.toml"
    recipe.write_text(textwrap.dedent(f"""\
        [package]
        name = "hostile"
        version = "1.0"
        [source]
        path = "{project}"
        [build]
        targets = ["native"]
        pythons = ["cp312"]
        env = {{ PROBE_PORT = "{port}" }}
        before-build = ["env", "python probe.py before"]
        [test]
        commands = ["python -m hostile.probe test"]
        """))
    (cache / "downloads").mkdir()
    # zig's runtimes are compiled once per machine: this farm's cache reuses them.
    shared_zig = Path(os.environ["WHEELFARM_CACHE_DIR"]) / "zig" / "cache"
    shared_zig.mkdir(parents=True, exist_ok=True)
    (cache / "zig").mkdir()
    (cache / "zig" / "cache").symlink_to(shared_zig, target_is_directory=True)
    (cache / "downloads" / "keep").write_text("cached")
    out = farm / "wheelhouse"
    try:
        result = wheelfarm("build", recipe, "--executor", executor, "--target", target,
                           "--python", "cp312", "--out", out, cwd=farm, timeout=1800,
                           env={**CANARIES, "GNUPGHOME": str(gnupg),
                                "WHEELFARM_CACHE_DIR": str(cache)})
    finally:
        server.close()
    logs = "".join(p.read_text(errors="replace")
                   for p in (farm / ".wheelfarm" / "logs").rglob("*.log"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:] + logs[-5000:]

    # The hostile steps really ran, and their output shipped in the wheel.
    wheels = list(out.glob("hostile-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as zf:
        shipped = {n: zf.read(n).decode(errors="replace") for n in zf.namelist()}
    assert "HOSTILE-before-RAN" in shipped["hostile/before.txt"]
    assert "HOSTILE-setup-RAN" in shipped["hostile/setup.txt"]
    for stage in ("before", "setup", "test"):
        assert f"HOSTILE-{stage}-RAN" in logs, stage
    # It saw the recipe's own variables, so the probe did look.
    assert f"'PROBE_PORT', '{port}'" in shipped["hostile/setup.txt"]

    # Nothing secret anywhere: job log, CLI output, wheels, provenance, state.
    places = {"job log": logs, "stdout": result.stdout, "stderr": result.stderr,
              **{f"wheel {n}": text for n, text in shipped.items()}}
    for path, data in _tree(out).items():
        places[f"out/{path}"] = data.decode(errors="replace")
    for path, data in _tree(farm / ".wheelfarm").items():
        if path != "secret.txt":
            places[f"state/{path}"] = data.decode(errors="replace")
    leaks = [(where, canary) for where, text in places.items() for canary in ALL
             if canary in text]
    assert not leaks, leaks

    # The shared cache was not written, and the network was out of reach.
    assert not [p for p in cache.rglob("pwned-*")], "a build wrote into the shared cache"
    assert not list(shared_zig.glob("pwned-*")), "a build wrote into zig's shared cache"
    assert "write denied" in shipped["hostile/setup.txt"]
    assert (cache / "downloads" / "keep").read_text() == "cached"
    assert not hits, "the build reached a listener on the farm's loopback"
    assert "warning: NO SANDBOX" not in logs
    assert os.environ.get("WHEELFARM_TOKEN") != CANARIES["WHEELFARM_TOKEN"]
