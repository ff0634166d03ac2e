"""The failure taxonomy: causes read from real compiler, linker and tool output."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wheelfarm.build import causes
from wheelfarm.build.outcome import Outcome
from wheelfarm.errors import FailureCause as C
from wheelfarm.errors import FailureKind as K

MISSING_HEADER = "#include <wheelfarm_no_such_header.h>\nint f(void) { return 0; }\n"
SYNTAX = "int f(void) { return x }\n"
UNDEFINED = "int g(void);\nint main(void) { return g(); }\n"


def _compile(tmp_path: Path, cc: list[str], text: str, *args: str) -> str:
    src = tmp_path / "m.c"
    src.write_text(text)
    done = subprocess.run([*cc, *args, str(src)], cwd=tmp_path, capture_output=True,
                          text=True, check=False)
    assert done.returncode != 0
    return done.stdout + done.stderr


def _zig() -> list[str]:
    return [sys.executable, "-m", "ziglang", "cc"]


@pytest.mark.parametrize("cc", ["gcc", "zig"])
def test_real_compiler_output_is_classified(tmp_path: Path, cc: str) -> None:
    if cc == "gcc" and shutil.which("gcc") is None:
        pytest.skip("no gcc")
    command = ["gcc"] if cc == "gcc" else _zig()
    header = _compile(tmp_path, command, MISSING_HEADER, "-c")
    syntax = _compile(tmp_path, command, SYNTAX, "-c")
    assert causes.classify(K.BUILD, "", header) is C.MISSING_DEPENDENCY
    assert causes.classify(K.BUILD, "", syntax) is C.COMPILER


def test_real_linker_output_is_classified(tmp_path: Path) -> None:
    undefined = _compile(tmp_path, ["gcc"], UNDEFINED, "-o", "m")
    library = _compile(tmp_path, ["gcc"], UNDEFINED, "-lwheelfarm_no_such_lib", "-o", "m")
    assert causes.classify(K.BUILD, "", undefined) is C.COMPILER
    assert causes.classify(K.BUILD, "", library) is C.MISSING_DEPENDENCY


@pytest.mark.parametrize(("kind", "reason", "log", "cause"), [
    (K.BUILD, "", 'error: unable to find dynamic system library "ssl" using strategy',
     C.MISSING_DEPENDENCY),
    (K.BUILD, "", "Package libffi was not found in the pkg-config search path.",
     C.MISSING_DEPENDENCY),
    (K.BUILD, "", "Package 'zlib', required by 'virtual:world', not found",
     C.MISSING_DEPENDENCY),
    (K.BUILD, "", "ERROR: No matching distribution found for cython>=3", C.NETWORK),
    (K.BUILD, "", "something went wrong", C.OTHER),
    (K.REPAIR, "x.whl does not satisfy manylinux_2_17_x86_64: memfd_create@GLIBC_2.27; "
     "needs glibc 2.27 or newer", "", C.TOO_NEW_SYMBOL),
    (K.REPAIR, "auditwheel produced x.whl without a manylinux tag", "", C.OTHER),
    (K.SOURCE, "download failed: https://files.example/x.tar.gz: HTTP 503 Service", "",
     C.NETWORK),
    (K.SOURCE, "sha256 mismatch for x.tar.gz", "", C.OTHER),
    (K.TEST, "", "", C.TEST),
    (K.PARITY, "", "", C.TEST),
    (K.TIMEOUT, "", "", C.TIMEOUT),
    (K.WORKER, "", "", C.INFRASTRUCTURE),
    (K.LEASE_EXPIRED, "", "", C.INFRASTRUCTURE),
    (K.TOOLCHAIN, "", "", C.INFRASTRUCTURE),
    (K.NEEDS, "", "", None),
    (K.INTERRUPTED, "", "", None),
])
def test_each_step_and_message_has_its_cause(kind: K, reason: str, log: str,
                                             cause: C | None) -> None:
    assert causes.classify(kind, reason, log) is cause


def test_a_missing_header_wins_over_the_compiler_error_it_causes() -> None:
    log = ("m.c:1:10: fatal error: 'Python.h' file not found\n"
           "error: command '/usr/bin/cc' failed with exit code 1\n")
    assert causes.classify(K.BUILD, "", log) is C.MISSING_DEPENDENCY


def test_the_cause_travels_in_a_workers_report() -> None:
    failed = Outcome.failed(K.BUILD, "no header", 1.0, "/l", C.MISSING_DEPENDENCY)
    assert Outcome.from_json(failed.to_json()).cause is C.MISSING_DEPENDENCY
    assert Outcome.from_dict({**failed.to_dict(), "cause": "from-a-newer-worker"}).cause is None
