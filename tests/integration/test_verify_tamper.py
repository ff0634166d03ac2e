"""`wheelfarm verify` against real gpg: an intact index passes; every kind of tampering,
replay, expiry, wrong key or missing signature is caught, named, and exits 1 (bad input 2)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.wheels import pure_wheel
from wheelfarm.publish.generations import clearsigned_text

from .helpers import ok, wheelfarm
from .publish_support import Key, packager_gpg

pytestmark = pytest.mark.integration

WHEEL = "files/wf_probe-2.0-py3-none-any.whl"


def publish_env(key: Key) -> dict[str, str]:
    return {"GNUPGHOME": str(key.home), "WHEELFARM_SIGN_KEY": key.fingerprint}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Key, Key]) -> Path:
    """Two generations: wf-probe 1.0, then wf-probe 2.0 and wf-app (which needs numpy)."""
    work = tmp_path_factory.mktemp("template")
    root = work / "index"
    env = publish_env(keys[0])
    ok(wheelfarm("publish", pure_wheel(work / "g1", "wf-probe", "1.0").parent, "--to", root,
                 cwd=work, env=env))
    shutil.copytree(root, work / "generation-1", symlinks=True)
    pure_wheel(work / "g2", "wf-probe", "2.0")
    pure_wheel(work / "g2", "wf-app", "1.0", requires=["wf-probe>=1", "numpy>=1.20"])
    ok(wheelfarm("publish", work / "g2", "--to", root, cwd=work, env=env))
    return root


@pytest.fixture
def index(template: Path, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "index"
    shutil.copytree(template, root, symlinks=True)
    yield root


class Verifier:
    def __init__(self, tmp_path: Path, key: Path) -> None:
        self.state = tmp_path / "state"
        self.key = key
        self.cwd = tmp_path

    def __call__(self, source: Path | str, key: Path | None = None
                 ) -> subprocess.CompletedProcess[str]:
        return wheelfarm("verify", source, "--key", key or self.key, "--state", self.state,
                         cwd=self.cwd, env={"GNUPGHOME": str(self.cwd / "no-such-home")})


@pytest.fixture
def run_verify(tmp_path: Path, keys: tuple[Key, Key]) -> Verifier:
    return Verifier(tmp_path, keys[0].public)


def failed(result: subprocess.CompletedProcess[str], *messages: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for message in messages:
        assert message in result.stderr, result.stderr


def test_an_intact_index_verifies_and_lists_what_else_to_mirror(
        index: Path, run_verify: Verifier) -> None:
    result = run_verify(index)
    assert "verified generation 2 of" in ok(result)
    assert "not in this index: wf-app 1.0 requires numpy>=1.20" in result.stderr
    assert "wf-probe>=1" not in result.stderr  # satisfied by the index itself


def test_a_flipped_byte_in_a_wheel(index: Path, run_verify: Verifier) -> None:
    wheel = index / WHEEL
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0x01
    wheel.write_bytes(bytes(data))
    failed(run_verify(index), f"FAILED: {WHEEL}: sha256 does not match the manifest")
    plain = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=index,
                           capture_output=True, text=True)
    assert plain.returncode == 1 and f"{WHEEL}: FAILED" in plain.stdout


def test_an_edited_manifest(index: Path, run_verify: Verifier) -> None:
    live = index / "generations" / "2" / "InRelease"
    live.write_text(live.read_text().replace("Generation: 2", "Generation: 9"))
    failed(run_verify(index), "FAILED: InRelease: signature bad")


def test_a_manifest_re_signed_with_another_key(index: Path, run_verify: Verifier,
                                              keys: tuple[Key, Key]) -> None:
    live = index / "generations" / "2" / "InRelease"
    text = clearsigned_text(live.read_bytes())
    resigned = subprocess.run(
        ["gpg", "--batch", "--homedir", str(keys[1].home), "--clearsign", "--local-user",
         keys[1].fingerprint], input=text.encode(), capture_output=True, check=True).stdout
    live.write_bytes(resigned)
    failed(run_verify(index), "FAILED: InRelease: signed by key",
           "not by the given key")


def test_a_replayed_older_generation(index: Path, template: Path, run_verify: Verifier) -> None:
    ok(run_verify(index))  # this machine has now seen generation 2
    # A stale mirror, or an attacker, serves generation 1 again: validly signed, but old.
    shutil.rmtree(index)
    shutil.copytree(template.parent / "generation-1", index, symlinks=True)
    failed(run_verify(index), "FAILED: InRelease: generation 1 is older than generation 2")
    fresh = Verifier(index.parent / "elsewhere", run_verify.key)
    fresh.cwd.mkdir()
    assert "verified generation 1" in ok(fresh(index))  # authentic, only old


def test_a_forked_generation(tmp_path: Path, keys: tuple[Key, Key],
                             run_verify: Verifier) -> None:
    root = tmp_path / "forked"
    env = publish_env(keys[0])
    ok(wheelfarm("publish", pure_wheel(tmp_path / "a", "wf-probe", "1.0").parent, "--to", root,
                 cwd=tmp_path, env=env))
    ok(run_verify(root))
    shutil.rmtree(root)
    ok(wheelfarm("publish", pure_wheel(tmp_path / "b", "wf-other", "1.0").parent, "--to", root,
                 cwd=tmp_path, env=env))
    failed(run_verify(root), "generation 1 differs from the generation 1 seen")


def test_an_expired_manifest_until_refreshed(tmp_path: Path, keys: tuple[Key, Key],
                                             run_verify: Verifier) -> None:
    root = tmp_path / "expiring"
    env = publish_env(keys[0])
    ok(wheelfarm("publish", pure_wheel(tmp_path / "w", "wf-probe", "1.0").parent, "--to", root,
                 "--valid-days", f"{2 / 86400:.8f}", cwd=tmp_path, env=env))
    time.sleep(3)
    failed(run_verify(root), "FAILED: InRelease: expired", "wheelfarm refresh")
    ok(wheelfarm("refresh", root, cwd=tmp_path, env=env))
    assert "verified generation 2" in ok(run_verify(root))


def test_the_wrong_key(index: Path, run_verify: Verifier, keys: tuple[Key, Key]) -> None:
    failed(run_verify(index, keys[1].public), "FAILED: InRelease: signed by key",
           "not by the given key")


def test_a_missing_wheel_signature(index: Path, run_verify: Verifier) -> None:
    (index / f"{WHEEL}.asc").unlink()
    failed(run_verify(index), f"FAILED: {WHEEL}.asc: missing signature")


def test_a_wheel_signature_by_another_key(index: Path, run_verify: Verifier,
                                          keys: tuple[Key, Key]) -> None:
    (index / f"{WHEEL}.asc").unlink()
    subprocess.run(["gpg", "--batch", "--homedir", str(keys[1].home), "--armor",
                    "--detach-sign", "--local-user", keys[1].fingerprint, "-o",
                    str(index / f"{WHEEL}.asc"), str(index / WHEEL)], check=True,
                   capture_output=True)
    failed(run_verify(index), f"FAILED: {WHEEL}.asc: sha256 does not match the manifest")


def test_an_unsigned_manifest(index: Path, run_verify: Verifier) -> None:
    live = index / "generations" / "2" / "InRelease"
    live.write_text(clearsigned_text(live.read_bytes()))
    failed(run_verify(index), "FAILED: InRelease: not signed")


def test_a_page_pointing_elsewhere(index: Path, run_verify: Verifier) -> None:
    page = (index / "simple" / "wf-probe" / "index.html").resolve()
    page.write_text(page.read_text().replace("#sha256=", "#sha256=0"))
    failed(run_verify(index), "FAILED: simple/wf-probe/index.html: sha256")


def test_edited_checksums(index: Path, run_verify: Verifier, keys: tuple[Key, Key],
                          tmp_path: Path) -> None:
    sums = (index / "SHA256SUMS").resolve()
    sums.write_text(sums.read_text().replace(WHEEL, WHEEL + ".x"))
    failed(run_verify(index), "FAILED: SHA256SUMS: sha256", "FAILED: SHA256SUMS.asc")
    with packager_gpg(tmp_path, keys[0].public) as gpg:
        plain = subprocess.run([*gpg, "--verify", "SHA256SUMS.asc", "SHA256SUMS"], cwd=index,
                               capture_output=True, text=True)
    assert plain.returncode != 0 and "BAD signature" in plain.stderr


def test_bad_input_to_verify_exits_2(index: Path, run_verify: Verifier, tmp_path: Path) -> None:
    not_a_key = tmp_path / "key.asc"
    not_a_key.write_text("hello\n")
    result = run_verify(index, not_a_key)
    assert result.returncode == 2 and "no OpenPGP public key" in result.stderr
    result = run_verify(tmp_path / "missing")
    assert result.returncode == 2 and "no such directory" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    failed(run_verify(empty), "FAILED: InRelease: missing")
