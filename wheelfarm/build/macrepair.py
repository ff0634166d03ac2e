"""Repairing macOS wheels: delocate on a Mac, the tag from the binaries everywhere.

On a Mac (a worker there builds with the host executor) ``delocate-wheel``
copies non-system libraries into the wheel and rewrites their install names,
the job auditwheel does on Linux. delocate needs Apple's ``otool`` and
``install_name_tool``, so a wheel cross-built by zig on Linux is not
delocated: zig links libc++ statically, so such a module loads only
``libSystem``, and the Mach-O check below fails the job if it loads anything
else.

Either way the wheel then carries the target's tag: a build backend on Linux
may have named it ``linux_x86_64`` (it asks the host's sysconfig), and
delocate names it after the newest ``minos`` it found. The tag is rewritten
in the file name and in ``WHEEL``, then every Mach-O member is checked
against it (:mod:`wheelfarm.build.macho`), so a wheel whose binaries
contradict its tag never leaves the job.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import IO

from wheelfarm.build import macho
from wheelfarm.build.executors import Place
from wheelfarm.errors import CommandError, RepairError
from wheelfarm.plan.targets import Target


def can_delocate() -> bool:
    """delocate runs only where Apple's binary tools are (a Mac)."""
    return sys.platform == "darwin"


def delocate_command(wheel: Path, target: Target, out_dir: Path) -> list[str]:
    """``delocate-wheel`` for ``target``: the architecture and the macOS version are
    required, not just recorded, so delocate itself refuses a library that
    needs a newer macOS than the tag."""
    assert target.macos is not None
    return ["delocate-wheel", "--require-archs", target.arch,
            "--require-target-macos-version", f"{target.macos[0]}.{target.macos[1]}",
            "-w", str(out_dir), "-v", str(wheel)]


def delocate_env(target: Target) -> dict[str, str]:
    assert target.macos is not None
    return {"MACOSX_DEPLOYMENT_TARGET": f"{target.macos[0]}.{target.macos[1]}"}


def repair_macos(place: Place, wheel: Path, target: Target, dest: Path,
                 log: IO[str] | None = None) -> Path:
    """The wheel for ``target`` in ``dest``: delocated where delocate runs,
    retagged, and checked; a wheel that fails the check is not left behind."""
    dest.mkdir(parents=True, exist_ok=True)
    if can_delocate():
        with tempfile.TemporaryDirectory(dir=dest, prefix=".delocate-") as tmp:
            try:
                place.run(delocate_command(wheel, target, Path(tmp)), cwd=wheel.parent,
                          env=delocate_env(target))
            except CommandError as exc:
                raise RepairError(f"delocate-wheel {wheel.name} failed: "
                                  f"{_last_line(exc.tail)}") from exc
            written = sorted(Path(tmp).glob("*.whl"))
            if len(written) != 1:
                raise RepairError(f"delocate-wheel {wheel.name} wrote {len(written)} wheels")
            out = retag(written[0], target, dest)
    else:
        if log is not None:
            log.write("not delocated: delocate needs Apple's otool (a Mac); the Mach-O "
                      "check below admits only system libraries\n")
        out = retag(wheel, target, dest)
    try:
        images = macho.check_wheel(out, target)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    if log is not None:
        for line in macho.describe(images):
            log.write(f"mach-o: {line}\n")
    return out


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def retagged_name(name: str, platform: str) -> str:
    """``pkg-1.0-cp312-cp312-linux_x86_64.whl`` with ``platform`` as its platform tag."""
    parts = name.removesuffix(".whl").split("-")
    if not name.endswith(".whl") or len(parts) not in (5, 6):
        raise RepairError(f"{name} is not a wheel file name")
    parts[-1] = platform
    return "-".join(parts) + ".whl"


def retag(wheel: Path, target: Target, dest: Path) -> Path:
    """Write ``wheel`` into ``dest`` with ``target``'s platform tag, in its file name
    and in every ``Tag:`` line of its WHEEL file (RECORD updated to match)."""
    out = dest / retagged_name(wheel.name, target.name)
    with zipfile.ZipFile(wheel) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        data = {i.filename: zf.read(i) for i in infos}
    wheel_file = _dist_info_file(data, "WHEEL", wheel)
    record = _dist_info_file(data, "RECORD", wheel)
    lines = []
    for line in data[wheel_file].decode("utf-8").splitlines():
        if line.startswith("Tag:"):
            python, abi, _platform = line.split(":", 1)[1].strip().split("-")
            line = f"Tag: {python}-{abi}-{target.name}"
        lines.append(line)
    body = ("\n".join(dict.fromkeys(lines)) + "\n").encode()
    data[wheel_file] = body
    data[record] = _record_with(data[record], wheel_file, body)
    fd, tmp = tempfile.mkstemp(prefix=".retag-", dir=dest)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            for info in infos:
                zf.writestr(info, data[info.filename], compress_type=zipfile.ZIP_DEFLATED)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if out.name != wheel.name and wheel.parent == dest:
        wheel.unlink(missing_ok=True)
    return out


def _dist_info_file(data: dict[str, bytes], name: str, wheel: Path) -> str:
    found = [n for n in data if n.count("/") == 1 and n.endswith(f".dist-info/{name}")]
    if len(found) != 1:
        raise RepairError(f"{wheel.name}: expected one .dist-info/{name}, found {len(found)}")
    return found[0]


def _record_with(record: bytes, member: str, body: bytes) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in csv.reader(io.StringIO(record.decode("utf-8"))):
        if row and row[0] == member:
            digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=")
            row = [member, "sha256=" + digest.decode(), str(len(body))]
        writer.writerow(row)
    return out.getvalue().encode()
