"""The container executor against a real Podman (or Docker) engine and the local
bullseye image (`make image`): real builds, real limits, real reaping.

CI starts Podman's API service and exports DOCKER_HOST (.ci/setup.d/40-podman.sh).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from wheelfarm.build.executors import engine as engines

from .helpers import (
    PROJECTS,
    RECIPES,
    container_engine,
    hostile_fastadd,
    tree_digest,
    wheelfarm,
)

pytestmark = pytest.mark.integration
TARGET = "manylinux_2_31_x86_64"


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    found = container_engine()
    volumes = {v.name for v in found.client.volumes.list()}
    yield found.client
    # Nothing a test started may outlive the module: no container, no volume.
    assert farm_containers(found.client) == []
    assert {v.name for v in found.client.volumes.list()} <= volumes


def farm_containers(client: Any) -> list[str]:
    return [c.name for c in client.containers.list(all=True,
                                                   filters={"label": engines.LABEL})]


def recipe(farm: Path, name: str, *, source: str | None = None, pythons: str = '["cp39"]',
           build: str = "", test: str | None = None) -> Path:
    src = PROJECTS / (source or name)
    path = farm / f"{name}.toml"
    checks = test if test is not None else f'imports = ["{source or name}"]'
    path.write_text(
        f'[package]\nname = "{name}"\nversion = "0.1.0"\n[source]\npath = "{src}"\n'
        f'[build]\ntargets = ["{TARGET}"]\npythons = {pythons}\n{build}\n[test]\n{checks}\n'
    )
    return path


def from_repo_recipe(farm: Path, name: str) -> Path:
    """A recipe of recipes/ (with its tests) retargeted at the local image, cp39."""
    text = (RECIPES / name).read_text()
    text = re.sub(r"(?m)^targets = .*$", f'targets = ["{TARGET}"]', text)
    text = re.sub(r"(?m)^pythons = .*$", 'pythons = ["cp39"]', text)
    text = text.replace('path = "../tests/', f'path = "{RECIPES.parent}/tests/')
    path = farm / name
    path.write_text(text)
    return path


def run(farm: Path, *args: str | Path, timeout: float = 900,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return wheelfarm("build", *args, "--farm", farm, cwd=farm, timeout=timeout, env=env)


def shown_policy(wheel: Path) -> str:
    """The platform tag `auditwheel show` finds the wheel consistent with."""
    out = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)],
                         capture_output=True, text=True, check=True).stdout
    flat = " ".join(out.split())
    m = re.search(r'consistent with the following platform tag: "([^"]+)"', flat)
    assert m, out
    return m.group(1)


# -- real builds --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(client: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    farm = tmp_path_factory.mktemp("container-farm")
    recipes = [from_repo_recipe(farm, f"{n}.toml") for n in ("fastadd", "cppvec", "rustsum")]
    out = farm / "wheelhouse"
    # --no-cache: build for real even when an earlier run left these wheels in the cache;
    # --check-reproducible: each job twice, in two containers, compared byte for byte.
    result = run(farm, *recipes, "--out", out, "--executor", "container", "--jobs", "2",
                 "--no-cache", "--check-reproducible", timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    return farm, out


@pytest.mark.parametrize("name", ["fastadd", "cppvec", "rustsum"])
def test_c_cpp_and_rust_build_in_the_image_and_auditwheel_agrees(
        built: tuple[Path, Path], name: str) -> None:
    _farm, out = built
    wheels = list(out.glob(f"{name}-0.1.0-cp39-cp39-*.whl"))
    assert len(wheels) == 1, sorted(p.name for p in out.iterdir())
    assert "manylinux_2_31_x86_64" in wheels[0].name
    policy = shown_policy(wheels[0])
    m = re.match(r"manylinux_2_(\d+)_x86_64$", policy)
    assert m and int(m.group(1)) <= 31, policy


def test_container_builds_are_reproducible(built: tuple[Path, Path]) -> None:
    farm, _out = built
    logs = list((farm / ".wheelfarm" / "logs").rglob("*-cp39-*.log"))
    assert len(logs) == 3
    for log in logs:
        assert "reproducible: both builds gave" in log.read_text(), log.name


def test_the_job_ran_in_a_container_without_network(built: tuple[Path, Path]) -> None:
    farm, _out = built
    log = next((farm / ".wheelfarm" / "logs").rglob("fastadd-cp39-*.log")).read_text()
    assert "network: disabled" in log
    # Two containers, the build's seeing the cache read-only, and both removed.
    assert re.search(r"containers wheelfarm-\w+_farm \(the farm's steps\) and "
                     r"wheelfarm-\w+_build \(the build, cache read-only\) started", log)
    assert re.search(r"container wheelfarm-\w+_farm removed", log)
    assert re.search(r"container wheelfarm-\w+_build removed", log)
    # The build ran the image's compiler and Python, and requirements came from the wheelhouse.
    assert "+ /opt/python/cp39-cp39/bin/python -m venv --without-pip" in log
    assert "--no-index --find-links" in log
    assert "auditwheel repair" in log


# -- the network ---------------------------------------------------------------------------------


@pytest.fixture()
def http_server() -> Iterator[str]:
    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello from the host"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_build_reaches_the_network_only_when_its_recipe_says_so(
        client: Any, tmp_path: Path, http_server: str) -> None:
    env = f'env = {{ NETPROBE_URL = "{http_server}" }}'
    check = ('commands = ["python -c \'import netprobe; '
             'assert netprobe.BODY == b\\"hello from the host\\"; '
             'import netprobe._native as n; assert n.answer() == 42\'"]')
    offline = recipe(tmp_path, "netprobe", build=env, test=check)
    out = tmp_path / "out"
    result = run(tmp_path, offline, "--out", out)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "netprobe-cp39-manylinux_2_31_x86_64: build:" in result.stderr
    log = next((tmp_path / ".wheelfarm" / "logs").rglob("netprobe-*.log")).read_text()
    assert "network: disabled" in log
    assert f"netprobe: cannot reach {http_server}" in log
    assert not list(out.glob("*.whl"))

    recipe(tmp_path, "netprobe", build=f"network = true\n{env}", test=check)
    result = run(tmp_path, offline, "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(list(out.glob("netprobe-0.1.0-*.whl"))) == 1
    logs = sorted((tmp_path / ".wheelfarm" / "logs").rglob("netprobe-*.log"),
                  key=lambda p: p.stat().st_mtime)
    assert "network: enabled (build.network = true)" in logs[-1].read_text()


# -- what must never leak ------------------------------------------------------------------------


def test_a_container_build_cannot_write_into_the_cache(client: Any, tmp_path: Path) -> None:
    """The farm's steps make the build environment in the per-user cache; the
    build's own code (a hostile setup.py) sees it read-only, so it can poison
    neither that environment nor the compiler wrappers other jobs will use."""
    token = secrets.token_hex(8)
    project = hostile_fastadd(
        tmp_path / "hostile", token,
        'env = pathlib.Path(os.environ["VIRTUAL_ENV"])\ncache = env.parent.parent',
        'env / "pyvenv.cfg", env / "TOKEN", cache / "envs" / "TOKEN", '
        'cache / "container" / "TOKEN", pathlib.Path(os.environ["CC"])')
    path = tmp_path / "hostile.toml"
    path.write_text(f'[package]\nname = "fastadd"\nversion = "0.1.0"\n'
                    f'[source]\npath = "{project}"\n'
                    f'[build]\ntargets = ["{TARGET}"]\npythons = ["cp39"]\n'
                    f'[test]\nimports = ["fastadd"]\n')
    cache = tmp_path / "cache"
    result = run(tmp_path, path, "--out", tmp_path / "out", "--json", tmp_path / "r.json",
                 env={"WHEELFARM_CACHE_DIR": str(cache)})
    assert result.returncode == 0, result.stdout + result.stderr
    [job] = json.loads((tmp_path / "r.json").read_text())["jobs"]
    log = Path(job["attempts"][0]["log"]).read_text()
    # setup.py runs twice (the requirements hook, the build): every write refused
    assert log.count("HOSTILE refused") == 10 and "HOSTILE wrote" not in log, log
    assert "Read-only file system" in log
    assert not [p for p in cache.rglob("*") if token in p.name]
    assert not [p for p in cache.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]


def test_a_killed_farm_leaves_a_container_the_next_run_reaps(client: Any, tmp_path: Path) -> None:
    slow = recipe(tmp_path, "slow", source="fastadd",
                  build='before-build = ["sleep 300"]')
    proc = subprocess.Popen([sys.executable, "-m", "wheelfarm", "build", str(slow), "--farm",
                             str(tmp_path), "--out", str(tmp_path / "out")], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    owner_prefix = f"{socket.gethostname()}:{proc.pid}:"
    try:
        deadline = time.monotonic() + 300
        mine: list[Any] = []
        while not mine and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            mine = [c for c in client.containers.list(filters={"label": engines.LABEL})
                    if c.labels.get(engines.OWNER, "").startswith(owner_prefix)]
        assert mine, "the build never started a container"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The farm process is gone without cleaning up: its container is still there.
    assert mine[0].name in farm_containers(client)
    quick = recipe(tmp_path, "quick", source="fastadd")
    result = run(tmp_path, quick, "--out", tmp_path / "out", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert mine[0].name not in farm_containers(client)
    log = next((tmp_path / ".wheelfarm" / "logs").rglob("quick-*.log")).read_text()
    assert f"removed stale container {mine[0].name}" in log


@pytest.fixture(scope="module")
def bad_farm(client: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A farm whose output already holds a good wheel; the failures below must not touch it."""
    farm = tmp_path_factory.mktemp("bad-farm")
    good = recipe(farm, "good", source="fastadd")
    out = farm / "out"
    result = run(farm, good, "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    return farm, good, out


def _failing_run(farm: Path, good: Path, out: Path, bad: Path, config: str
                 ) -> subprocess.CompletedProcess[str]:
    (farm / "wheelfarm.toml").write_text(config)
    before = tree_digest(out)
    try:
        # --no-cache: the good job really runs, beside the failing one.
        result = run(farm, good, bad, "--out", out, "--jobs", "2", "--no-cache")
    finally:
        (farm / "wheelfarm.toml").unlink()
    # wheelfarm's own lines; the indented ones quote the build's output
    assert not [line for line in result.stderr.splitlines()
                if "Traceback" in line and not line.startswith("  ")]
    # The good job still succeeded: the same wheel, unchanged, and the index kept.
    assert "good" in result.stdout and "ok" in result.stdout
    after = tree_digest(out)
    assert {k: v for k, v in after.items() if k.endswith(".whl")} == \
        {k: v for k, v in before.items() if k.endswith(".whl")}
    return result


def test_memory_limit_overrun_is_named(client: Any, bad_farm: tuple[Path, Path, Path]) -> None:
    farm, good, out = bad_farm
    hog = recipe(farm, "hog", source="fastadd",
                 build="before-build = [\"python -c 'b = b\\\"x\\\" * (1 << 30); print(len(b))'\"]")
    result = _failing_run(farm, good, out, hog, '[container-limits]\nmemory = "300m"\n')
    assert result.returncode == 1, result.stdout + result.stderr
    assert "out-of-memory killer" in result.stderr and "300 MiB" in result.stderr
    assert farm_containers(client) == []


def test_job_timeout_kills_the_container(client: Any, bad_farm: tuple[Path, Path, Path]) -> None:
    farm, good, out = bad_farm
    sleeper = recipe(farm, "sleeper", source="fastadd", build='before-build = ["sleep 600"]')
    started = time.monotonic()
    result = _failing_run(farm, good, out, sleeper, "[container-limits]\ntimeout = 45\n")
    assert result.returncode == 1, result.stdout + result.stderr
    assert time.monotonic() - started < 300
    assert "exceeded its time limit of 45s" in result.stderr
    assert farm_containers(client) == []


def test_a_missing_image_fails_only_its_job(client: Any, bad_farm: tuple[Path, Path, Path]) -> None:
    farm, good, out = bad_farm
    other = farm / "other.toml"
    other.write_text(recipe(farm, "other", source="fastadd").read_text()
                     .replace(TARGET, "manylinux_2_28_x86_64"))
    result = _failing_run(farm, good, out, other,
                          '[images]\n"manylinux_2_28_x86_64" = '
                          '"localhost/wheelfarm-no-such-image:latest"\n')
    assert result.returncode == 1, result.stdout + result.stderr
    assert "image localhost/wheelfarm-no-such-image:latest not found" in result.stderr
    assert farm_containers(client) == []


def test_writes_outside_the_work_dir_fail_the_job(client: Any,
                                                  bad_farm: tuple[Path, Path, Path]) -> None:
    farm, good, out = bad_farm
    vandal = recipe(farm, "vandal", source="fastadd",
                    build='before-build = ["touch /usr/local/lib/wheelfarm-was-here"]')
    result = _failing_run(farm, good, out, vandal, "jobs = 2\n")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "wrote outside its work directory: /usr/local/lib/wheelfarm-was-here" in result.stderr
    assert farm_containers(client) == []


def test_an_engine_that_is_not_running_is_a_clear_error(
        client: Any, bad_farm: tuple[Path, Path, Path], tmp_path: Path) -> None:
    farm, good, out = bad_farm
    dead = tmp_path / "dead.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(dead))
    listener.close()  # the socket file stays; nothing answers: a stopped service
    before = tree_digest(out)
    (farm / "wheelfarm.toml").write_text(f'engine = "unix://{dead}"\n')
    try:
        result = run(farm, good, "--out", out, "--no-cache")
    finally:
        (farm / "wheelfarm.toml").unlink()
    # The farm saw the image before, so the job is planned and fails with the reason.
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"engine in wheelfarm.toml unix://{dead} (connection refused" in result.stderr
    assert tree_digest(out) == before
    # A farm that never saw the image cannot even plan: bad configuration, exit 2.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "wheelfarm.toml").write_text(f'engine = "unix://{dead}"\n')
    result = run(fresh, good, "--out", fresh / "out", "--no-cache",
                 env={"WHEELFARM_CACHE_DIR": str(fresh / "cache")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: no container engine answered: tried engine in "
                                    "wheelfarm.toml")
    assert len(result.stderr.strip().splitlines()) == 1
