"""The in-toto statement written beside every wheel (provenance.py)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from wheelfarm import __version__
from wheelfarm.build import provenance
from wheelfarm.build.provenance import BuildFacts

WHEEL = "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"
SOURCE_SHA = "a" * 64
RECIPE_SHA = "b" * 64
KEY = "c" * 64


def make_facts(**kw: object) -> BuildFacts:
    fields: dict[str, object] = {
        "recipe_name": "demo",
        "recipe_path": "/farm/recipes/demo.toml",
        "recipe_digest": RECIPE_SHA,
        "source": {"kind": "pypi", "uri": "pypi:demo==1.0", "sha256": SOURCE_SHA},
        "target": "manylinux_2_17_x86_64",
        "python": "cp312",
        "test_pythons": ("cp312", "cp313"),
        "executor": "zig",
        "job_key": KEY,
        "source_date_epoch": 1_700_000_000,
        "network": False,
        "toolchain": {"zig": "0.13.0", "auditwheel": "6.1.0", "build": "1.2.2"},
        "build_requirements": ("setuptools==75.1.0 --hash=sha256:" + "d" * 64,
                               "wheel==0.44.0 --hash=sha256:" + "e" * 64),
        "locked": True,
        # 14:30:05 at +02:00 is 12:30:05 UTC.
        "started": datetime(2024, 3, 1, 14, 30, 5, 999_000,
                            tzinfo=timezone(timedelta(hours=2))),
        "finished": datetime(2024, 3, 1, 12, 31, 0, tzinfo=UTC),
    }
    fields.update(kw)
    return BuildFacts(**fields)  # type: ignore[arg-type]


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    path = tmp_path / WHEEL
    path.write_bytes(b"PK\x05\x06" + bytes(18) + b"not really a wheel")
    return path


def test_statement_shape(wheel: Path) -> None:
    doc = provenance.statement(wheel, make_facts())
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["predicateType"] == "https://slsa.dev/provenance/v1"
    assert doc["subject"] == [
        {"name": WHEEL, "digest": {"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()}}]
    predicate = doc["predicate"]
    assert set(predicate) == {"buildDefinition", "runDetails"}
    definition = predicate["buildDefinition"]
    assert definition["buildType"] == "urn:wheelfarm:build:v1"
    assert definition["externalParameters"] == {
        "recipe": {"name": "demo", "path": "/farm/recipes/demo.toml", "sha256": RECIPE_SHA},
        "target": "manylinux_2_17_x86_64",
        "python": "cp312",
        "testPythons": ["cp312", "cp313"],
        "executor": "zig",
        "profile": "release",
    }
    assert definition["internalParameters"] == {
        "jobKey": KEY,
        "sourceDateEpoch": 1_700_000_000,
        "network": False,
        "toolchain": {"auditwheel": "6.1.0", "build": "1.2.2", "zig": "0.13.0"},
        "lockedBuildRequirements": True,
    }
    assert list(definition["internalParameters"]["toolchain"]) == ["auditwheel", "build", "zig"]
    assert definition["resolvedDependencies"] == [
        {"kind": "pypi", "uri": "pypi:demo==1.0", "sha256": SOURCE_SHA},
        {"uri": "pypi:setuptools==75.1.0 --hash=sha256:" + "d" * 64},
        {"uri": "pypi:wheel==0.44.0 --hash=sha256:" + "e" * 64},
    ]
    assert predicate["runDetails"] == {
        "builder": {"id": f"urn:wheelfarm:{__version__}"},
        "metadata": {"invocationId": KEY, "startedOn": "2024-03-01T12:30:05Z",
                     "finishedOn": "2024-03-01T12:31:00Z"},
        "testResult": {"status": "tested", "pythons": ["cp312", "cp313"]},
    }
    json.dumps(doc)  # serializable as it stands


def test_statement_follows_the_facts(wheel: Path) -> None:
    doc = provenance.statement(wheel, make_facts(network=True, locked=False,
                                                 build_requirements=(), executor="container"))
    definition = doc["predicate"]["buildDefinition"]
    assert definition["internalParameters"]["network"] is True
    assert definition["internalParameters"]["lockedBuildRequirements"] is False
    assert definition["externalParameters"]["executor"] == "container"
    assert definition["resolvedDependencies"] == [
        {"kind": "pypi", "uri": "pypi:demo==1.0", "sha256": SOURCE_SHA}]


def test_subject_digest_tracks_the_wheel_bytes(wheel: Path) -> None:
    before = provenance.statement(wheel, make_facts())["subject"][0]["digest"]["sha256"]
    wheel.write_bytes(b"other bytes")
    after = provenance.statement(wheel, make_facts())["subject"][0]["digest"]["sha256"]
    assert after == hashlib.sha256(b"other bytes").hexdigest() != before


def test_write_read_round_trip(wheel: Path, tmp_path: Path) -> None:
    dest = provenance.path_for(wheel)
    assert provenance.write(wheel, make_facts(), dest) == dest
    assert provenance.read(dest) == provenance.statement(wheel, make_facts())
    text = dest.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_path_for_is_a_sidecar(tmp_path: Path) -> None:
    wheel = tmp_path / "out" / WHEEL
    assert provenance.path_for(wheel) == tmp_path / "out" / (WHEEL + ".intoto.json")
    assert provenance.SUFFIX == ".intoto.json"


def test_a_wheel_nothing_here_can_run_is_never_called_tested(wheel: Path,
                                                            tmp_path: Path) -> None:
    facts = make_facts(target="macosx_11_0_arm64", test_status="built and checked, not run",
                       test_note="a macOS binary cannot run on linux")
    path = provenance.write(wheel, facts, tmp_path / "p.json")
    result = provenance.read(path)["predicate"]["runDetails"]["testResult"]
    assert result == {"status": "built and checked, not run", "pythons": [],
                      "note": "a macOS binary cannot run on linux"}
