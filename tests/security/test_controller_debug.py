"""Debug files from remote workers: the controller keeps one only as the debug
info of a module of the job's own checked wheel, under a name it derives itself.

Each test is a hostile worker speaking HTTP to a real controller (SQLite queue,
loopback). The ELF files are the machine's own programs: what is checked is
their GNU build-id, which every Debian binary carries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wheelfarm.build.debuginfo import build_id_of

from ..integration.queue_support import status
from .farm import Farm, make_wheel, recipe, sha256, start_farm

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MODULE = Path("/bin/true")  # shipped in the wheel as a module
OTHER = Path("/bin/false")  # an ELF file of another build-id


def _build_id(path: Path) -> str:
    with path.open("rb") as fh:
        found = build_id_of(fh)
    assert found, f"{path} has no GNU build-id"
    return found


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    yield from start_farm(tmp_path)


def _job_with_wheel(farm: Farm, tmp_path: Path) -> tuple[dict[str, str], dict[str, Any], Path]:
    """A started lease whose wheel (holding MODULE as a module) is uploaded."""
    farm.submit(recipe(tmp_path, "atk"))
    me = farm.headers("w1")
    [lease] = [x for x in farm.claim(me) if x["recipe"] == "atk"]
    assert farm.post("/start", me, json={"lease": lease}).status_code == 200
    wheel = make_wheel(tmp_path / "w", "atk", extra={"atk/_speed.so": MODULE.read_bytes()})
    assert farm.upload(me, lease, wheel.name, wheel.read_bytes()).status_code == 200
    return me, lease, wheel


def _finish(farm: Farm, me: dict[str, str], lease: dict[str, Any], wheel: Path) -> None:
    finished = farm.post("/finish", me, json={"lease": lease, "outcome": {
        "ok": True, "duration": 1.0,
        "artifact": {"filename": wheel.name, "sha256": sha256(wheel), "location": ""}}})
    assert finished.json() == {"state": "succeeded"}, finished.text
    assert (farm.wheelhouse / wheel.name).is_file()


def _debug_files(farm: Farm) -> list[str]:
    """Every debug file the controller holds: uploaded, published, or half-received."""
    found = [p for p in (farm.root / ".wheelfarm" / "uploads").rglob("*")
             if p.is_file() and p.name != "job.log" and not p.name.endswith(".whl")]
    found += [p for p in (farm.wheelhouse / "debug").rglob("*") if p.is_file()]
    return sorted(str(p) for p in found)


def test_a_wheels_debug_file_is_published_with_a_listing_the_controller_writes(
        farm: Farm, tmp_path: Path) -> None:
    """The other side of the refusals below: the real thing is accepted."""
    me, lease, wheel = _job_with_wheel(farm, tmp_path)
    build_id = _build_id(MODULE)
    resp = farm.upload(me, lease, f"{build_id}.debug", MODULE.read_bytes())
    assert resp.status_code == 200, resp.text
    # The listing is the controller's own: a worker cannot send one.
    told = farm.upload(me, lease, f"{wheel.name}.json", b'{"debug": []}')
    assert 400 <= told.status_code < 500
    _finish(farm, me, lease, wheel)
    published = farm.wheelhouse / "debug" / f"{build_id}.debug"
    assert published.read_bytes() == MODULE.read_bytes()
    doc = json.loads((farm.wheelhouse / "debug" / f"{wheel.name}.json").read_text())
    assert doc["debug"] == [{"buildId": build_id, "module": "atk/_speed.so",
                             "sha256": sha256(MODULE), "size": MODULE.stat().st_size}]


@pytest.mark.parametrize("defect", ["build-id is not its name", "not in the job's wheel",
                                    "not ELF", "sent before the wheel"])
def test_a_debug_file_that_is_not_the_wheels_is_refused(
        farm: Farm, tmp_path: Path, defect: str) -> None:
    if defect == "sent before the wheel":
        farm.submit(recipe(tmp_path, "atk"))
        me = farm.headers("w1")
        [lease] = [x for x in farm.claim(me) if x["recipe"] == "atk"]
        name, data = f"{_build_id(MODULE)}.debug", MODULE.read_bytes()
    else:
        me, lease, wheel = _job_with_wheel(farm, tmp_path)
        name, data = {
            "build-id is not its name": (f"{_build_id(MODULE)}.debug", OTHER.read_bytes()),
            "not in the job's wheel": (f"{_build_id(OTHER)}.debug", OTHER.read_bytes()),
            "not ELF": (f"{_build_id(MODULE)}.debug", b"#!/bin/sh\necho hi\n"),
        }[defect]
    resp = farm.upload(me, lease, name, data)
    assert 400 <= resp.status_code < 500, resp.text
    assert _debug_files(farm) == []
    if defect != "sent before the wheel":
        _finish(farm, me, lease, wheel)
        assert _debug_files(farm) == []
        assert not (farm.wheelhouse / "debug" / f"{wheel.name}.json").exists()


@pytest.mark.parametrize("name", [
    "..%2F..%2F..%2Fevil.debug",
    "..%2Fwheelhouse%2Fdebug%2F{id}.debug",
    "{ID}.debug",  # a build-id is spelt in lower-case hex only
    "{id}.debug.debug",
    "{id}%00.debug",
    ".debug",
    "..debug",
])
def test_a_path_like_debug_file_name_is_refused(farm: Farm, tmp_path: Path, name: str) -> None:
    me, lease, wheel = _job_with_wheel(farm, tmp_path)
    build_id = _build_id(MODULE)
    resp = farm.upload(me, lease, name.format(id=build_id, ID=build_id.upper()),
                       MODULE.read_bytes())
    assert 400 <= resp.status_code < 500, resp.text
    assert _debug_files(farm) == []
    assert not list(farm.root.rglob("evil.debug"))
    _finish(farm, me, lease, wheel)
    assert _debug_files(farm) == []


def test_a_published_build_id_is_never_rewritten(farm: Farm, tmp_path: Path) -> None:
    build_id = _build_id(MODULE)
    held = farm.wheelhouse / "debug" / f"{build_id}.debug"
    held.parent.mkdir(parents=True)
    held.write_bytes(b"published earlier\n")
    me, lease, wheel = _job_with_wheel(farm, tmp_path)
    resp = farm.upload(me, lease, f"{build_id}.debug", MODULE.read_bytes())
    assert 400 <= resp.status_code < 500, resp.text
    _finish(farm, me, lease, wheel)
    assert held.read_bytes() == b"published earlier\n"
    assert not (farm.wheelhouse / "debug" / f"{wheel.name}.json").exists()
    assert [j["state"] for j in status(farm.root)["jobs"]] == ["succeeded"]
