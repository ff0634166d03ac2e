"""The controller's checks of an uploaded debug file, on the machine's own ELF files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from wheelfarm.build import debuginfo
from wheelfarm.errors import ConfigError
from wheelfarm.farm import debugupload
from wheelfarm.farm.wheelhouse import Debug, Wheelhouse

MODULE, OTHER = Path("/bin/true"), Path("/bin/false")


def _id(path: Path) -> str:
    with path.open("rb") as fh:
        found = debuginfo.build_id_of(fh)
    assert found
    return found


def _lease_dir(tmp_path: Path) -> Path:
    lease = tmp_path / "lease"
    lease.mkdir()
    with zipfile.ZipFile(lease / "atk-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("atk/__init__.py", "")
        zf.writestr("atk/_speed.so", MODULE.read_bytes())
    return lease


@pytest.mark.parametrize("name", ["", ".debug", "ABCDEF0123456789.debug", "abc.debug",
                                  "../0123456789abcdef.debug", "0123456789abcdef.debug.x",
                                  "0123456789abcdef"])
def test_a_debug_file_name_must_be_a_build_id(name: str) -> None:
    with pytest.raises(ConfigError):
        debugupload.build_id_of_name(name)


def test_a_build_id_name_is_read_back() -> None:
    assert debugupload.build_id_of_name("0123456789abcdef.debug") == "0123456789abcdef"


def test_only_a_module_of_the_wheel_with_its_own_build_id_passes(tmp_path: Path) -> None:
    lease, house = _lease_dir(tmp_path), tmp_path / "house"
    debugupload.check_upload(MODULE, _id(MODULE), lease, house)
    with pytest.raises(ConfigError, match="not the name"):
        debugupload.check_upload(OTHER, _id(MODULE), lease, house)
    with pytest.raises(ConfigError, match="no module"):
        debugupload.check_upload(OTHER, _id(OTHER), lease, house)
    text = tmp_path / "text"
    text.write_bytes(b"not elf")
    with pytest.raises(ConfigError, match="not an ELF"):
        debugupload.check_upload(text, _id(MODULE), lease, house)
    broken = tmp_path / "broken"
    broken.write_bytes(debuginfo.ELF_MAGIC + b"\x02\x01\x01" + b"\xff" * 40)
    with pytest.raises(ConfigError):
        debugupload.check_upload(broken, _id(MODULE), lease, house)


def publish(wheel: Path, lease: Path, house: Path) -> int:
    """What the controller does with an accepted wheel; how many debug files it lists."""
    files = debugupload.checked(wheel, wheel.name, lease)
    Wheelhouse(house, index=False).add(wheel, debug=Debug(files, once=True))
    return len(debuginfo.read_listing(house / wheel.name))


def test_publish_writes_the_listing_from_the_wheel_and_keeps_build_ids_write_once(
        tmp_path: Path) -> None:
    lease, house = _lease_dir(tmp_path), tmp_path / "house"
    wheel = lease / "atk-1.0-py3-none-any.whl"
    (lease / "debug").mkdir()
    (lease / "debug" / f"{_id(MODULE)}.debug").write_bytes(MODULE.read_bytes())
    (lease / "debug" / f"{_id(OTHER)}.debug").write_bytes(OTHER.read_bytes())  # not the wheel's
    assert publish(wheel, lease, house) == 1
    assert sorted(p.name for p in (house / "debug").iterdir()) == sorted([
        f"{_id(MODULE)}.debug", f"{wheel.name}.json"])
    rows = json.loads((house / "debug" / f"{wheel.name}.json").read_text())["debug"]
    assert [(r["buildId"], r["module"]) for r in rows] == [(_id(MODULE), "atk/_speed.so")]
    (house / "debug" / f"{_id(MODULE)}.debug").write_bytes(b"earlier\n")
    assert publish(wheel, lease, house) == 0
    assert (house / "debug" / f"{_id(MODULE)}.debug").read_bytes() == b"earlier\n"
    assert not (house / "debug" / f"{wheel.name}.json").exists()
