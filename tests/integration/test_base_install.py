"""wheelfarm as a user installs it: the wheel `python -m build` makes (license
metadata, extras), and a venv with only the base install, made with the install
line of examples/github-actions.yml, that builds the C fixture and answers each
feature of an extra with one line naming the extra."""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from .helpers import ROOT

pytestmark = pytest.mark.integration

# The packages of the extras; none of them may be in a base install.
EXTRA_MODULES = ("boto3", "botocore", "docker", "requests", "gnupg", "starlette", "uvicorn",
                 "psycopg", "jinja2", "prometheus_client")


def _source_copy(where: Path) -> Path:
    """What a checkout holds of wheelfarm's package, without this checkout's build
    debris, so nothing a build writes lands in the working tree."""
    src = where / "wheelfarm-src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "wheelfarm", src / "wheelfarm",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return src


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _source_copy(tmp_path_factory.mktemp("packaging"))


@pytest.fixture(scope="session")
def dists(source: Path) -> dict[str, Path]:
    """`python -m build` of wheelfarm itself: an sdist, and a wheel built from it."""
    out = source.parent / "dist"
    subprocess.run([sys.executable, "-m", "build", "--outdir", out, source], check=True,
                   capture_output=True, text=True, timeout=600)
    (wheel,) = out.glob("wheelfarm-*.whl")
    (sdist,) = out.glob("wheelfarm-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def _github_install_line() -> str:
    workflow = yaml.safe_load((ROOT / "examples" / "github-actions.yml").read_text())
    (line,) = [s["run"] for s in workflow["jobs"]["build"]["steps"]
               if "pip install" in s.get("run", "")]
    return str(line)


@pytest.fixture(scope="session")
def base_venv(source: Path) -> Path:
    """A venv with wheelfarm and nothing of its extras, installed by the example
    workflow's own install line, run by a shell as GitHub runs it (the checkout
    in GITHUB_WORKSPACE, WHEELFARM_URL unset), with the project's constraints."""
    venv = source.parent / "base-venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("WHEELFARM_URL", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", GITHUB_WORKSPACE=str(source),
               PIP_CONSTRAINT=str(ROOT / "constraints.txt"))
    done = subprocess.run(["sh", "-c", _github_install_line()], env=env, cwd=source.parent,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return venv


def _run(venv: Path, *args: str | os.PathLike[str], cwd: Path,
         ) -> subprocess.CompletedProcess[str]:
    # A cache of its own: the base install leaves the suite's shared cache as it was.
    env = {**os.environ, "COLUMNS": "200", "WHEELFARM_CACHE_DIR": str(venv.parent / "cache")}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run([venv / "bin" / "wheelfarm", *map(os.fspath, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1800, check=False)


def test_the_wheel_carries_the_license_and_the_extras(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as whl:
        info = next(n.split("/")[0] for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(whl.read(f"{info}/METADATA").decode())
        license_text = whl.read(f"{info}/licenses/LICENSE").decode()
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert "Copyright (c) 2026 the wheelfarm developers" in license_text
    assert set(metadata.get_all("Provides-Extra") or ()) == {
        "farm", "s3", "containers", "sign", "dev"}
    requires = metadata.get_all("Requires-Dist") or []
    base = {r.split(">")[0].split(";")[0].strip() for r in requires if "extra ==" not in r}
    assert not base & {"boto3", "docker", "psycopg[binary]", "starlette", "uvicorn",
                       "python-gnupg", "jinja2", "requests"}
    assert any(r.startswith("boto3") and 'extra == "s3"' in r for r in requires)
    with tarfile.open(dists["sdist"]) as sdist:
        assert any(n.endswith("/LICENSE") for n in sdist.getnames())


def test_the_base_install_has_no_extra(base_venv: Path) -> None:
    found = subprocess.run(
        [base_venv / "bin" / "python", "-c",
         "import importlib.util, sys\n"
         "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))",
         *EXTRA_MODULES], capture_output=True, text=True, check=True).stdout.split()
    assert found == []


def test_the_base_install_builds_plans_and_merges(base_venv: Path, tmp_path: Path) -> None:
    """The C fixture for Linux (the host's gcc, auditwheel and patchelf repair it) and
    for macOS (zig cross-builds it, lief reads the Mach-O): targets whose toolchains
    are cheap to prepare in a cache of its own (zig's C++ runtime takes minutes)."""
    listed = _run(base_venv, "--help", cwd=tmp_path)  # every command, extras or not
    assert listed.returncode == 0 and "controller" in listed.stdout, listed.stderr
    recipe = ROOT / "recipes" / "fastadd.toml"
    for target, executor in (("manylinux_2_36_x86_64", "host"), ("macosx_11_0_arm64", "zig")):
        built = _run(base_venv, "build", recipe, "--python", "cp312", "--target", target,
                     "--executor", executor, "--out", "wheelhouse", cwd=tmp_path)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheels = sorted(p.name for p in (tmp_path / "wheelhouse").glob("*.whl"))
    assert len(wheels) == 2 and "macosx_11_0_arm64" in wheels[0] \
        and "manylinux_2_36_x86_64" in wheels[1], wheels
    planned = _run(base_venv, "plan", recipe, "--python", "cp312", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    merged = _run(base_venv, "merge", "wheelhouse", "--out", "merged", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert len(list((tmp_path / "merged").glob("fastadd-*.whl"))) == 2


@pytest.mark.parametrize(("args", "extra", "config"), [
    (("controller", "--help"), "farm", None),
    (("dashboard",), "farm", None),
    (("serve", "."), "farm", None),
    (("status",), "farm", 'state = "postgresql://farm@127.0.0.1:9/farm"\n'),
    (("publish", ".", "--to", "s3://bucket/wheels"), "s3", None),
    (("publish", ".", "--to", "index", "--sign-key", "ABCDEF"), "sign", None),
    (("verify", ".", "--key", "farm.asc"), "sign", None),
    (("build", ROOT / "recipes" / "fastadd.toml", "--executor", "container", "--python", "cp312"),
     "containers", None),
], ids=["controller", "dashboard", "serve", "postgresql", "s3", "sign", "verify", "container"])
def test_a_feature_of_an_extra_names_the_extra(base_venv: Path, tmp_path: Path,
                                               args: tuple[str, ...], extra: str,
                                               config: str | None) -> None:
    if config:
        (tmp_path / "wheelfarm.toml").write_text(config)
    (tmp_path / "farm.asc").write_text("")
    result = _run(base_venv, *args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    assert f"needs the '{extra}' extra: pip install 'wheelfarm[{extra}]'" in lines[0]


def test_every_module_imports_or_names_its_extra(base_venv: Path) -> None:
    """Nothing of wheelfarm fails to import in a base install but with the one
    error that names an extra, and only the modules of those features do."""
    script = (
        "import importlib, pkgutil, wheelfarm\n"
        "from wheelfarm.errors import ExtraMissing\n"
        "for m in pkgutil.walk_packages(wheelfarm.__path__, 'wheelfarm.'):\n"
        "    if m.name == 'wheelfarm.__main__':  # runs the CLI\n"
        "        continue\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except ExtraMissing as exc:\n"
        "        print(m.name, exc.extra)\n")
    result = subprocess.run([base_venv / "bin" / "python", "-c", script],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    needing = dict(line.split() for line in result.stdout.splitlines())
    assert {"wheelfarm.farm.controller": "farm", "wheelfarm.publish.serve": "farm",
            "wheelfarm.farm.dashboard": "farm", "wheelfarm.farm.metrics": "farm",
            "wheelfarm.publish.store.s3": "s3", "wheelfarm.build.executors.container": "containers",
            "wheelfarm.build.executors.engine": "containers"}.items() <= needing.items()
    for base in ("wheelfarm.cli.build", "wheelfarm.cli.ci", "wheelfarm.cli.farm",
                 "wheelfarm.cli.publish", "wheelfarm.api", "wheelfarm.build.pipeline",
                 "wheelfarm.farm.localrun", "wheelfarm.farm.worker", "wheelfarm.farm.remote",
                 "wheelfarm.farm.localhistory", "wheelfarm.cli.notify",
                 "wheelfarm.publish.publisher", "wheelfarm.publish.verify",
                 "wheelfarm.publish.signing"):
        assert base not in needing
