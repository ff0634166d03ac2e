"""The publish suite, run against the filesystem store and against S3 (moto's real server):
real `wheelfarm publish/rollback/yank/refresh/history` processes, real gpg, real sha256sum."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.wheels import pure_wheel
from wheelfarm.publish.manifest import Release, parse_sums

from .helpers import ok, require
from .publish_support import Index, Key, packager_gpg, read_like_pip

pytestmark = pytest.mark.integration


def pages(index: Index) -> dict[str, bytes]:
    """Every page of the live generation (from its SHA256SUMS), with its bytes."""
    sums = index.store.get("SHA256SUMS")
    assert sums is not None
    out = {}
    for key in parse_sums(sums):
        if key.startswith("simple/"):
            data = index.store.get(key)
            assert data is not None
            out[key] = data
    return out


def generation(index: Index) -> int:
    signed = index.store.get("InRelease")
    assert signed is not None
    from wheelfarm.publish.generations import clearsigned_text

    return Release.parse(clearsigned_text(signed)).generation


def test_publish_verify_then_rollback_restores_pages_byte_for_byte(
        index: Index, fastadd_dir: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    first.mkdir()
    built = next(fastadd_dir.glob("*.whl"))
    (first / built.name).write_bytes(built.read_bytes())
    provenance = built.with_name(built.name + ".intoto.json")
    if provenance.exists():
        (first / provenance.name).write_bytes(provenance.read_bytes())
    pure_wheel(first, "wf-probe", "1.0")
    assert "generation 1" in ok(index.publish(first))

    visible = read_like_pip(index.store)
    assert set(visible) == {built.name, "wf_probe-1.0-py3-none-any.whl"}
    report = index.verify()
    assert report.ok, report.failures
    assert report.generation == 1 and report.signatures == 3  # two wheels + SHA256SUMS
    if provenance.exists():
        assert index.store.get(f"files/{built.name}.intoto.json") == provenance.read_bytes()
    distros = json.loads(index.store.get("simple/fastadd/distros.json") or b"")
    assert distros["wheels"][built.name]["RHEL"].endswith("+")

    # The plain-tools route, on a local copy (for S3: what `aws s3 sync` would fetch).
    mirror = index.root or index.mirror(tmp_path / "mirror")
    require("sha256sum")
    ok(subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=mirror,
                      capture_output=True, text=True))
    with packager_gpg(tmp_path, index.key.public) as gpg:
        for args in (["SHA256SUMS.asc", "SHA256SUMS"], ["InRelease"]):
            ok(subprocess.run([*gpg, "--verify", *args], cwd=mirror, capture_output=True,
                              text=True))

    generation_1 = pages(index)
    second = tmp_path / "second"
    pure_wheel(second, "wf-probe", "2.0")
    pure_wheel(second, "wf-other", "1.0")
    assert "generation 2" in ok(index.publish(second))
    assert pages(index) != generation_1
    assert index.verify().ok  # the state now remembers generation 2

    assert "generation 3" in ok(index.cli("rollback", index.url))
    assert pages(index) == generation_1
    assert set(read_like_pip(index.store)) == {built.name, "wf_probe-1.0-py3-none-any.whl"}
    report = index.verify()  # generation 3 > 2: the rollback protection accepts it
    assert report.ok and report.generation == 3, report.failures

    history = ok(index.cli("history", index.url))
    for expected in ("rollback to generation 1", "publish 2 wheels", "3 *"):
        assert expected in history, history


def test_same_bytes_again_is_a_no_op_and_other_bytes_are_refused(
        index: Index, tmp_path: Path) -> None:
    first = tmp_path / "first"
    wheel = pure_wheel(first, "wf-probe", "1.0")
    ok(index.publish(first))
    out = ok(index.publish(first))
    assert "nothing to change; generation 1" in out and "same bytes" in out
    assert generation(index) == 1

    before = index.snapshot()
    rebuilt = tmp_path / "rebuilt"
    pure_wheel(rebuilt, "wf-probe", "1.0", note="a rebuild with other bytes")
    pure_wheel(rebuilt, "wf-new", "1.0")  # refused with it: nothing of this publish lands
    result = index.publish(rebuilt)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"files/{wheel.name} is already published with other bytes" in result.stderr
    assert "[build] number = N" in result.stderr
    assert "Traceback" not in result.stderr
    assert index.snapshot() == before


def test_bad_file_names_are_refused_before_anything_is_written(
        index: Index, tmp_path: Path) -> None:
    ok(index.publish(pure_wheel(tmp_path / "good", "wf-probe", "1.0").parent))
    before = index.snapshot()
    for name, message in [("wf_probe\\evil-1.0-py3-none-any.whl", "not a plain wheel file name"),
                          ("WF.Probe-2.0-py3-none-any.whl",
                           "expected wf_probe-2.0-py3-none-any.whl")]:
        bad = tmp_path / f"bad-{len(message)}"
        bad.mkdir()
        source = pure_wheel(tmp_path / "src", "wf-probe", "2.0")
        (bad / name).write_bytes(source.read_bytes())
        result = index.publish(bad)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
    assert index.snapshot() == before


def test_yank_and_unyank(index: Index, tmp_path: Path) -> None:
    wheels = tmp_path / "w"
    pure_wheel(wheels, "wf-probe", "1.0")
    pure_wheel(wheels, "wf-probe", "2.0")
    ok(index.publish(wheels))
    assert ": yank wf-probe==2.0: broken build" in ok(
        index.cli("yank", index.url, "WF_Probe==2.0", "--reason", "broken build"))
    listing = json.loads(index.store.get("simple/wf-probe/index.json") or b"")
    assert {f["filename"]: f["yanked"] for f in listing["files"]} == {
        "wf_probe-1.0-py3-none-any.whl": False, "wf_probe-2.0-py3-none-any.whl": "broken build"}
    assert 'data-yanked="broken build"' in (index.store.get("simple/wf-probe/index.html")
                                            or b"").decode()
    assert index.verify().ok
    assert "nothing to change" in ok(index.cli("yank", index.url, "wf-probe==2.0",
                                               "--reason", "broken build"))
    ok(index.cli("unyank", index.url, "wf-probe==2.0"))
    listing = json.loads(index.store.get("simple/wf-probe/index.json") or b"")
    assert not any(f["yanked"] for f in listing["files"])
    assert generation(index) == 3

    for args, message in [(["wf-probe==9.9"], "wf-probe==9.9 is not published"),
                          (["wf-probe>=2"], "expected NAME==VERSION"),
                          (["wf-probe==2.0", "--reason", "two\nlines"], "one line")]:
        result = index.cli("yank", index.url, *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_refresh_renews_valid_until_with_the_same_pages(index: Index, tmp_path: Path) -> None:
    ok(index.publish(pure_wheel(tmp_path / "w", "wf-probe", "1.0").parent,
                     extra=["--valid-days", "1"]))
    before = pages(index)
    signed = index.store.get("InRelease") or b""
    from wheelfarm.publish.generations import clearsigned_text

    old = Release.parse(clearsigned_text(signed))
    out = ok(index.cli("refresh", index.url, "--valid-days", "10"))
    assert out.startswith("generation 2 of ") and out.rstrip().endswith(": refresh")
    new = Release.parse(clearsigned_text(index.store.get("InRelease") or b""))
    assert (new.valid_until - old.valid_until).days >= 8
    assert pages(index) == before
    assert index.verify().ok


def test_an_unsigned_or_unknown_key_is_a_configuration_error(
        index: Index, tmp_path: Path, keys: tuple[Key, Key]) -> None:
    wheels = pure_wheel(tmp_path / "w", "wf-probe", "1.0").parent
    result = index.cli("publish", wheels, "--to", index.url, env={"WHEELFARM_SIGN_KEY": ""})
    assert result.returncode == 2 and "no signing key" in result.stderr
    result = index.cli("publish", wheels, "--to", index.url, "--sign-key", keys[1].fingerprint)
    assert result.returncode == 2 and "no secret key" in result.stderr
    assert keys[1].fingerprint not in result.stderr
    assert index.snapshot() == {}


def test_the_signing_key_stays_out_of_the_logs(index: Index, tmp_path: Path) -> None:
    """Even with DEBUG logging, neither the key's secret nor its id reaches the output."""
    script = ("import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stderr);"
              "from wheelfarm.cli import main; sys.exit(main(sys.argv[1:]))")
    wheels = pure_wheel(tmp_path / "w", "wf-probe", "1.0").parent
    result = subprocess.run(
        [sys.executable, "-c", script, "publish", str(wheels), "--to", index.url],
        cwd=index.work, env={**os.environ, **index.env}, capture_output=True, text=True,
        timeout=600)
    ok(result)
    assert "generation 1" in result.stdout
    secret = subprocess.run(["gpg", "--batch", "--homedir", str(index.key.home), "--armor",
                             "--export-secret-keys", index.key.fingerprint],
                            capture_output=True, text=True, check=True).stdout
    body = "".join(secret.splitlines()[2:6])
    output = result.stdout + result.stderr
    assert body and body not in output
    assert index.key.fingerprint not in output and index.key.fingerprint[-16:] not in output


def test_first_publish_refuses_a_directory_that_holds_another_index(tmp_path: Path,
                                                                    keys: tuple[Key, Key]) -> None:
    from .helpers import wheelfarm

    target = tmp_path / "wheelhouse"
    (target / "simple").mkdir(parents=True)
    (target / "simple" / "index.html").write_text("<html></html>")
    wheels = pure_wheel(tmp_path / "w", "wf-probe", "1.0").parent
    result = wheelfarm("publish", wheels, "--to", target, cwd=tmp_path,
                       env={"GNUPGHOME": str(keys[0].home),
                            "WHEELFARM_SIGN_KEY": keys[0].fingerprint})
    assert result.returncode == 2 and "did not publish" in result.stderr
    assert not (target / "files").exists()


def test_wheel_metadata_is_served_for_pep_658(index: Index, tmp_path: Path) -> None:
    wheel = pure_wheel(tmp_path / "w", "wf-probe", "1.0", requires=["rich>=13"])
    ok(index.publish(wheel.parent))
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read("wf_probe-1.0.dist-info/METADATA")
    assert index.store.get(f"files/{wheel.name}.metadata") == metadata
    report = index.verify()
    assert report.ok and report.missing == ["wf-probe 1.0 requires rich>=13"]


def test_a_missing_bucket_is_bad_input(tmp_path: Path, keys: tuple[Key, Key],
                                       moto_endpoint: str) -> None:
    from .helpers import wheelfarm
    from .publish_support import aws_env

    wheels = pure_wheel(tmp_path / "w", "wf-probe", "1.0").parent
    env = {"GNUPGHOME": str(keys[0].home), "WHEELFARM_SIGN_KEY": keys[0].fingerprint,
           **aws_env(moto_endpoint)}
    result = wheelfarm("publish", wheels, "--to", "s3://no-such-bucket/pypi", cwd=tmp_path,
                       env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "NoSuchBucket" in result.stderr and "Traceback" not in result.stderr
    result = wheelfarm("verify", "s3://no-such-bucket/pypi", "--key", keys[0].public,
                       "--state", tmp_path / "state", cwd=tmp_path, env=env)
    assert result.returncode == 2 and "NoSuchBucket" in result.stderr
