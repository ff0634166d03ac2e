"""The sandbox's rules, one at a time: the environment allowlist, what bwrap is
told to hide, the require mode, and worker tokens kept out of argv."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from wheelfarm.build.executors import JobContext, sandbox
from wheelfarm.build.executors.host import HostPlace
from wheelfarm.cli.farm import TOKEN_ENV, _worker_token
from wheelfarm.errors import ConfigError
from wheelfarm.plan.targets import parse_target

FARM_ENV = {
    "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt", "PIP_CERT": "/etc/ssl/ca.crt",
    "PIP_INDEX_URL": "https://user:pw@mirror/simple", "HOME": "/root",
    "https_proxy": "http://proxy:3128",
    "WHEELFARM_TOKEN": "t", "WHEELFARM_SIGN_PASSPHRASE": "p", "WHEELFARM_SIGN_KEY": "k",
    "GNUPGHOME": "/keys", "AWS_SECRET_ACCESS_KEY": "a", "DATABASE_URL": "postgres://x",
}


def test_project_code_gets_locale_path_and_ca_settings_only() -> None:
    env = sandbox.allowed_env(FARM_ENV, farm_tool=False)
    assert env == {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                   "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
                   "PIP_CERT": "/etc/ssl/ca.crt"}
    # The proxy only when the recipe lets the build reach the network.
    assert "https_proxy" in sandbox.allowed_env(FARM_ENV, farm_tool=False, network=True)


def test_farm_tools_get_pip_settings_but_no_secret() -> None:
    env = sandbox.allowed_env(FARM_ENV, farm_tool=True)
    assert env["PIP_INDEX_URL"] and env["HOME"] == "/root" and env["https_proxy"]
    for secret in ("WHEELFARM_TOKEN", "WHEELFARM_SIGN_PASSPHRASE", "WHEELFARM_SIGN_KEY",
                   "GNUPGHOME", "AWS_SECRET_ACCESS_KEY", "DATABASE_URL"):
        assert secret not in env


def test_bwrap_hides_private_dirs_and_writes_only_the_work_dir(tmp_path: Path) -> None:
    farm, work, gnupg = tmp_path / "farm", tmp_path / "farm" / ".wheelfarm" / "work", tmp_path / "g"
    work.mkdir(parents=True)
    gnupg.mkdir()
    (farm / "wheelfarm.toml").write_text("")
    box = sandbox.Sandbox(hidden=(farm / ".wheelfarm", farm / "wheelfarm.toml", gnupg),
                          readable=(), writable=(work,), network=False)
    argv = box.wrap(["true"], work)
    assert argv[:argv.index("--ro-bind")] == [
        "bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc",
        "--unshare-uts", "--unshare-cgroup-try", "--unshare-net"]
    joined = " ".join(argv)
    assert f"--tmpfs {farm / '.wheelfarm'}" in joined
    assert f"--ro-bind /dev/null {farm / 'wheelfarm.toml'}" in joined
    assert f"--tmpfs {gnupg}" in joined and f"--remount-ro {gnupg}" in joined
    # The work dir is mounted after the directory hiding it, else it would be buried.
    assert joined.index(f"--bind {work} {work}") > joined.index(f"--tmpfs {farm / '.wheelfarm'}")
    assert argv[-3:] == [str(work), "--", "true"]
    assert "--unshare-net" not in sandbox.Sandbox((), (), (), network=True).wrap(["true"], work)
    # A directory to show again that holds a hidden one is not shown.
    shown = sandbox.Sandbox(hidden=(gnupg,), readable=(tmp_path, work), writable=(),
                            network=False).wrap(["true"], work)
    assert f"--ro-bind {tmp_path} {tmp_path}" not in " ".join(shown)
    assert f"--ro-bind {work} {work}" in " ".join(shown)


def _ctx(tmp_path: Path) -> JobContext:
    return JobContext(parse_target("native"), "cp312", tmp_path, tmp_path / "cache",
                      io.StringIO())


def test_require_mode_refuses_to_build_without_a_sandbox(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    sandbox.unavailable.cache_clear()
    try:
        monkeypatch.setenv(sandbox.MODE_ENV, "require")
        with pytest.raises(ConfigError, match=r"sandbox is required.*not installed"):
            HostPlace(_ctx(tmp_path), {})
        monkeypatch.setenv(sandbox.MODE_ENV, "auto")
        ctx = _ctx(tmp_path)
        place = HostPlace(ctx, {})
        assert place.sandbox is None and place.network
        assert "warning: NO SANDBOX" in ctx.log.getvalue()  # type: ignore[attr-defined]
    finally:
        sandbox.unavailable.cache_clear()


@pytest.mark.integration
def test_a_sandboxed_command_cannot_read_the_farms_environ(tmp_path: Path) -> None:
    """Own pid namespace: /proc/<pid>/environ of the farm (and pytest) is out of reach."""
    reason = sandbox.unavailable()
    if reason:
        pytest.skip(reason)
    os.environ["WHEELFARM_SANDBOX_CANARY"] = "canary-pid-9d1e"
    try:
        place = HostPlace(_ctx(tmp_path), {})
        script = ("for f in /proc/[0-9]*/environ; do cat $f; done; "
                  f"cat /proc/{os.getpid()}/environ; echo pids: /proc/[0-9]*")
        result = place.run(["sh", "-c", script], cwd=tmp_path, untrusted=True,
                           env={"MINE": "x"})
    finally:
        del os.environ["WHEELFARM_SANDBOX_CANARY"]
    assert "canary-pid-9d1e" not in result.stdout
    assert "MINE=x" in result.stdout  # the command ran and read its own environ
    assert f"/proc/{os.getpid()}/environ: No such file or directory" in result.stdout
    direct = subprocess.run(["sh", "-c", f"cat /proc/{os.getpid()}/environ"],
                            env={}, capture_output=True, check=False)
    assert b"PATH" in direct.stdout  # without the sandbox it would have been readable


def test_worker_token_from_a_file_and_never_inherited(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    @click.command()
    @click.option("--token-file", type=click.Path(path_type=Path))
    @click.option("--token", envvar=TOKEN_ENV)
    def cmd(token_file: Path | None, token: str | None) -> None:
        seen.append(_worker_token(token_file, token))
        seen.append(os.environ.get(TOKEN_ENV))

    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    runner = CliRunner()
    assert runner.invoke(cmd, ["--token-file", str(secret)]).exit_code == 0
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert runner.invoke(cmd, []).exit_code == 0
    assert seen == ["from-file", None, "from-env", None]
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    result = runner.invoke(cmd, ["--token", "in-argv"])
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)
    assert "visible to every process" in str(result.exception)
