"""A standing farm under hostile recipes: a controller, two HTTP workers and a
store. The recipes dump their environment, read /proc, read the workers' farm
files, inject an option through ``source.git`` and point symlinks out of their
tree. Nothing secret may reach a log, a wheel, provenance, the queue or the
store, and the only wheel published is the job's own."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from wheelfarm.farm.serving import wait_until_up

from ..integration.helpers import python_for, require, wheelfarm
from ..integration.publish_support import Key
from ..integration.queue_support import cli, farm_dir, free_port, status, stop

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

# The env dump runs in before-build (job log) and in setup.py (into the wheel
# itself), and tries every way a build could reach its worker's secrets.
SETUP_PY = """import glob, os
from pathlib import Path
from setuptools import setup
seen = [f"{k}={v}" for k, v in os.environ.items()]
for path in glob.glob("/proc/*/environ") + glob.glob("/proc/*/cmdline"):
    try:
        seen.append(Path(path).read_bytes().decode("utf-8", "replace"))
    except OSError:
        pass
for path in SECRETS:
    try:
        seen.append(Path(path).read_text())
    except OSError as exc:
        seen.append(f"unreadable {path}: {exc.strerror}")
Path("wfhostile").mkdir(exist_ok=True)
Path("wfhostile/__init__.py").write_text("SEEN = " + repr(seen) + "\\n")
setup(name="wfhostile", version="1.0", packages=["wfhostile"])
"""
BEFORE_BUILD = ["env", "cat /proc/*/environ /proc/*/cmdline || true"]


def _recipe(farm: Path, name: str, source: str, before: list[str]) -> None:
    (farm / "recipes" / f"{name}.toml").write_text(
        f'[package]\nname = "{name}"\nversion = "1.0"\n[source]\n{source}\n'
        '[build]\ntargets = ["linux_x86_64"]\npythons = ["cp312"]\nexecutor = "host"\n'
        f"before-build = {json.dumps(before)}\nmax-attempts = 1\n")


def _files(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*")
            if p.is_file() and not p.is_symlink()]


def _wheel_text(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return b"".join(zf.read(n) for n in zf.namelist())


def test_a_farm_under_hostile_recipes_leaks_nothing_and_ships_only_its_own(
        tmp_path: Path, keys: tuple[Key, Key]) -> None:
    require("bwrap")
    require("gpg")
    python_for("cp312")
    canary = {name: f"canary-{name.lower()}-{secrets.token_hex(8)}" for name in (
        "WHEELFARM_SIGN_PASSPHRASE", "AWS_SECRET_ACCESS_KEY", "WHEELFARM_SIGN_KEY")}
    farm = farm_dir(tmp_path / "farm", f"sqlite:///{tmp_path / 'state.db'}", lease=30)
    (farm / "recipes").mkdir()
    src = farm / "src"
    # A project that exfiltrates into its own wheel and its log.
    hostile = src / "hostile"
    hostile.mkdir(parents=True)
    worker_homes = [tmp_path / "w1", tmp_path / "w2"]
    gnupg = tmp_path / "gnupg"
    gnupg.mkdir(mode=0o700)
    key_canary = f"canary-keyring-{secrets.token_hex(8)}"
    (gnupg / "private-keys-v1.d").mkdir()
    (gnupg / "private-keys-v1.d" / "key.key").write_text(key_canary)
    file_canaries = [key_canary]
    secret_files = [str(gnupg / "private-keys-v1.d" / "key.key")]
    for home in worker_homes:
        home.mkdir()
        mark = f"canary-config-{home.name}-{secrets.token_hex(8)}"
        (home / "wheelfarm.toml").write_text(f"# {mark}\n")
        (home / ".wheelfarm").mkdir()
        state_mark = f"canary-state-{home.name}-{secrets.token_hex(8)}"
        (home / ".wheelfarm" / "secret.txt").write_text(state_mark)
        file_canaries += [mark, state_mark]
        secret_files += [str(home / "wheelfarm.toml"), str(home / ".wheelfarm" / "secret.txt")]
    (hostile / "setup.py").write_text(SETUP_PY.replace("SECRETS", repr(secret_files)))
    (hostile / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n')
    _recipe(farm, "wfhostile", 'path = "../src/hostile"',
            [*BEFORE_BUILD, *(f"cat {f} || true" for f in secret_files)])
    # A tree whose only payload is a link out of it, to a worker's config.
    linked = src / "linked"
    (linked / "wflinked").mkdir(parents=True)
    (linked / "wflinked" / "__init__.py").symlink_to(worker_homes[0] / "wheelfarm.toml")
    (linked / "setup.py").write_text(
        'from setuptools import setup\nsetup(name="wflinked", version="1.0", '
        'packages=["wflinked"])\n')
    _recipe(farm, "wflinked", 'path = "../src/linked"', [])

    # An option smuggled in as a git location is refused before anything is queued.
    marker = tmp_path / "git-option-ran"
    injected = tmp_path / "injected"
    (injected / "recipes").mkdir(parents=True)
    _recipe(injected, "wfinject",
            f'git = "--upload-pack=touch {marker};false"\nrev = "{"a" * 40}"', [])
    refused = cli("submit", injected / "recipes", cwd=farm)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "source.git" in refused.stderr and "Traceback" not in refused.stderr
    assert not marker.exists()

    submitted = cli("submit", "recipes/", cwd=farm)
    assert submitted.returncode == 0, submitted.stderr
    assert not marker.exists()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    logs = tmp_path / "processes.log"
    env = {k: v for k, v in os.environ.items() if k != "WHEELFARM_STATE"}
    controller = subprocess.Popen([sys.executable, "-m", "wheelfarm", "controller", "--port",
                                   str(port)], cwd=farm, env=env,
                                  stdout=logs.open("ab"), stderr=subprocess.STDOUT)
    workers: list[subprocess.Popen[bytes]] = []
    tokens = []
    try:
        wait_until_up(url)
        for home in worker_homes:
            token = cli("token", home.name, cwd=farm).stdout.strip()
            tokens.append(token)
            worker_env = {**env, **canary, "WHEELFARM_TOKEN": token, "GNUPGHOME": str(gnupg)}
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "wheelfarm", "worker", "--drain", "--controller", url,
                 "--farm", str(home)], cwd=home, env=worker_env,
                stdout=logs.open("ab"), stderr=subprocess.STDOUT))
        for w in workers:
            assert w.wait(timeout=600) == 0, logs.read_text()[-3000:]
    finally:
        for w in [*workers, controller]:
            stop(w)

    doc = status(farm)
    by_recipe = {j["recipe"]: j for j in doc["jobs"]}
    assert set(by_recipe) == {"wfhostile", "wflinked"}
    assert by_recipe["wfhostile"]["state"] == "succeeded", json.dumps(doc["jobs"])[:3000]
    assert by_recipe["wflinked"]["state"] == "failed"
    linked_log = cli("logs", by_recipe["wflinked"]["key"][:12], cwd=farm).stdout
    assert "outside" in linked_log or "out of" in linked_log, linked_log[-2000:]

    # The hostile step really ran: its log holds the env dump, its wheel what it saw.
    hostile_log = cli("logs", by_recipe["wfhostile"]["key"][:12], cwd=farm).stdout
    assert "PATH=" in hostile_log and "SOURCE_DATE_EPOCH=" in hostile_log
    [wheel] = sorted((farm / "wheelhouse").glob("*.whl"))
    assert wheel.name.startswith("wfhostile-1.0-")
    seen = _wheel_text(wheel)
    assert b"SEEN = [" in seen and b"PATH=" in seen

    # Publish what the farm accepted, then look for every canary everywhere.
    store = tmp_path / "store"
    publisher = {"GNUPGHOME": str(keys[0].home), "WHEELFARM_SIGN_KEY": keys[0].fingerprint}
    published = wheelfarm("publish", farm / "wheelhouse", "--to", store, cwd=farm,
                          env=publisher)
    assert published.returncode == 0, published.stdout + published.stderr
    shipped = sorted(p.name for p in (store / "files").iterdir() if p.suffix == ".whl")
    assert shipped == [wheel.name]
    needles = [*canary.values(), *file_canaries, *tokens]
    places = _files(farm, store, *worker_homes, tmp_path / "state.db")
    places.append(tmp_path / "state.db")
    places.append(logs)
    assert any(p.suffix == ".log" for p in places)
    planted = {Path(f) for f in secret_files}
    for path in places:
        if path in planted:
            continue
        data = path.read_bytes()
        if path.suffix == ".whl":
            data += _wheel_text(path)
        for needle in needles:
            assert needle.encode() not in data, f"{needle} leaked into {path}"
