"""Real Macs as workers, as far as a Linux machine can tell: python discovery in a
directory laid out like a Mac, the capabilities a Mac advertises, where a macOS job
may run, the host executor's refusals, and the queue handing macOS jobs only to Macs."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from wheelfarm.build.executors import JobContext, host
from wheelfarm.errors import ConfigError
from wheelfarm.farm.state import Capabilities, NewJob
from wheelfarm.farm.state.db import open_engine
from wheelfarm.farm.state.queue import Queue
from wheelfarm.plan import pythons, targets
from wheelfarm.plan.targets import parse_target

MAC_ARM = parse_target("macosx_11_0_arm64")
MAC_X86 = parse_target("macosx_10_13_x86_64")


def _exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_python_discovery_on_a_mac_layout(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    framework = tmp_path / "Library/Frameworks/Python.framework/Versions"
    org312 = _exe(framework / "3.12/bin/python3.12")
    _exe(framework / "3.13/bin/python3.13t")  # free-threaded only: another ABI
    _exe(framework / "Current/bin/python3")
    brew312 = _exe(tmp_path / "opt/homebrew/bin/python3.12")
    brew311 = _exe(tmp_path / "opt/homebrew/bin/python3.11")
    intel310 = _exe(tmp_path / "usr/local/bin/python3.10")
    assert pythons.mac_interpreters(tmp_path) == {
        "cp312": org312, "cp311": brew311, "cp310": intel310}
    assert brew312.exists()  # python.org's install is preferred over Homebrew's
    # pyenv still comes first.
    pyenv = tmp_path / "pyenv"
    pyenv311 = _exe(pyenv / "versions/3.11.9/bin/python")
    monkeypatch.setenv("PYENV_ROOT", str(pyenv))
    monkeypatch.setenv("PATH", os.defpath)
    found = pythons.discover(mac_root=tmp_path)
    assert found["cp311"] == pyenv311 and found["cp312"] == org312
    assert found["cp310"] == intel310
    assert "cp313" not in found or found["cp313"] != framework / "3.13/bin/python3.13t"


def test_a_mac_advertises_the_arch_of_its_wheel_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(targets, "host_arch", lambda: "aarch64")
    assert targets.worker_arch() == "arm64"
    monkeypatch.setattr(targets.platform, "system", lambda: "Linux")
    assert targets.worker_arch() == "aarch64"


def test_a_mac_knows_its_own_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets.platform, "mac_ver", lambda: ("14.5", ("", "", ""), "arm64"))
    monkeypatch.setattr(targets, "host_arch", lambda: "aarch64")
    assert targets.host_macos_target() == parse_target("macosx_14_0_arm64")
    monkeypatch.setattr(targets.platform, "mac_ver", lambda: ("10.15.7", ("", "", ""), ""))
    monkeypatch.setattr(targets, "host_arch", lambda: "x86_64")
    assert targets.host_macos_target() == parse_target("macosx_10_15_x86_64")
    monkeypatch.setattr(targets.platform, "mac_ver", lambda: ("", ("", "", ""), ""))
    assert targets.host_macos_target() is None


def test_where_a_job_may_run() -> None:
    assert targets.worker_requirements(MAC_ARM, "host") == ("macos", "arm64")
    assert targets.worker_requirements(MAC_X86, "host") == ("macos", "x86_64")
    assert targets.worker_requirements(MAC_ARM, "zig") == ("linux", "")
    linux = parse_target("manylinux_2_17_aarch64")
    assert targets.worker_requirements(linux, "zig") == ("linux", "aarch64")


def test_the_host_executor_builds_macos_wheels_only_on_a_mac(tmp_path: Path) -> None:
    if host.sys.platform == "darwin":
        pytest.skip("this machine is a Mac")
    executor = host.HostExecutor()
    # Planning for a Mac worker of the farm is fine here; opening the job is not.
    executor.check(MAC_ARM)
    ctx = JobContext(MAC_ARM, "cp312", tmp_path, tmp_path / "cache", io.StringIO())
    with pytest.raises(ConfigError, match=r"only on a Mac.*'zig' executor cross-builds"), \
            executor.open(ctx):
        pass
    assert host.mac_env(MAC_ARM) == {"MACOSX_DEPLOYMENT_TARGET": "11.0",
                                     "ARCHFLAGS": "-arch arm64",
                                     "_PYTHON_HOST_PLATFORM": "macosx-11.0-arm64"}


def test_the_host_executor_on_a_mac_refuses_linux_and_the_other_arch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host.sys, "platform", "darwin")
    monkeypatch.setattr(host, "host_macos_target", lambda: parse_target("macosx_14_0_arm64"))
    executor = host.HostExecutor()
    executor.check(MAC_ARM)
    with pytest.raises(ConfigError, match="builds macOS wheels, not manylinux_2_17_x86_64"):
        executor.check(parse_target("manylinux2014_x86_64"))
    with pytest.raises(ConfigError, match="on a arm64 Mac"):
        executor.check(MAC_X86)


def _job(key: str, target: str, executor: str) -> NewJob:
    os_, arch = targets.worker_requirements(parse_target(target), executor)
    return NewJob(key=key, kind="build", recipe="demo", target=target, python="cp312",
                  executor=executor, arch=arch, os=os_, pythons=("cp312",),
                  spec={"recipe_text": "x"})


def test_the_queue_sends_macos_host_jobs_only_to_macs_of_their_arch(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        queue = Queue(engine, lease_seconds=10.0, backoff=5.0)
        queue.submit([_job("mac-arm", "macosx_11_0_arm64", "host"),
                      _job("mac-intel", "macosx_10_13_x86_64", "host"),
                      _job("mac-cross", "macosx_11_0_arm64", "zig"),
                      _job("linux", "manylinux_2_17_x86_64", "zig")])
        every = ("host", "zig", "container")
        linux = Capabilities(os="linux", arch="x86_64", executors=every, pythons=("cp312",))
        arm_mac = Capabilities(os="macos", arch="arm64", executors=every, pythons=("cp312",))
        intel_mac = Capabilities(os="macos", arch="x86_64", executors=every,
                                 pythons=("cp312",))
        assert {lease.key for lease in queue.claim("lx", linux, limit=10)} == {
            "mac-cross", "linux"}  # zig cross-builds macOS on Linux; never a host job
        assert {lease.key for lease in queue.claim("m1", arm_mac, limit=10)} == {"mac-arm"}
        assert {lease.key for lease in queue.claim("i7", intel_mac, limit=10)} == {
            "mac-intel"}
    finally:
        engine.dispose()
