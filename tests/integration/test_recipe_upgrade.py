"""`wheelfarm add`, `outdated` and `bump` against a real PEP 691 index on loopback, and
the cibuildwheel migration of a project directory, through the real CLI.

The index serves five releases of the C fixture (sdists made here with
``python -m build --sdist``: 0.1.0, 0.1.1, 0.2.0, a yanked 0.2.1 and a
pre-release 0.3.0rc1) and the wheels a lock of it pins (setuptools, build), so
a bumped recipe's lock resolves and builds from this index alone.
"""

from __future__ import annotations

import difflib
import hashlib
import html
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from packaging.utils import parse_sdist_filename, parse_wheel_filename

from .helpers import PROJECTS, RECIPES, ok, python_for, wheelfarm

pytestmark = pytest.mark.integration

VERSIONS = ("0.1.0", "0.1.1", "0.2.0", "0.2.1", "0.3.0rc1")
YANKED = {"fastadd-0.2.1.tar.gz": "a broken release"}


@dataclass(frozen=True)
class Upstream:
    url: str  # the PEP 691 index (JSON when asked, HTML otherwise)
    html_url: str  # the same files as PEP 503 HTML only
    files: Path

    def sha256(self, filename: str) -> str:
        return hashlib.sha256((self.files / filename).read_bytes()).hexdigest()


def _sdists(out: Path, work: Path) -> None:
    for version in VERSIONS:
        project = work / f"fastadd-{version}"
        shutil.copytree(PROJECTS / "fastadd", project)
        pyproject = project / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"',
                                                           f'version = "{version}"'))
        subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation",
                        "--outdir", str(out), str(project)], check=True, capture_output=True)


def _handler(files: Path) -> type[BaseHTTPRequestHandler]:
    def project_files(name: str) -> list[Path]:
        found = []
        for f in sorted(files.iterdir()):
            parsed = parse_wheel_filename(f.name)[0] if f.name.endswith(".whl") \
                else parse_sdist_filename(f.name)[0]
            if parsed == name:
                found.append(f)
        return found

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            if parts[:1] == ["files"] and len(parts) == 2 and (files / parts[1]).is_file():
                return self._send((files / parts[1]).read_bytes(), "application/octet-stream")
            html_only = parts[:1] == ["html"]
            parts = parts[1:] if html_only else parts
            if len(parts) != 2 or parts[0] != "simple" or not project_files(parts[1]):
                return self._send(b"not found", "text/plain", 404)
            entries = [(f.name, hashlib.sha256(f.read_bytes()).hexdigest(), YANKED.get(f.name))
                       for f in project_files(parts[1])]
            if not html_only and "application/vnd.pypi.simple.v1+json" in \
                    self.headers.get("Accept", ""):
                body = json.dumps({"meta": {"api-version": "1.1"}, "name": parts[1], "files": [
                    {"filename": n, "url": f"/files/{n}", "hashes": {"sha256": h},
                     **({"yanked": y} if y else {})} for n, h, y in entries]})
                return self._send(body.encode(), "application/vnd.pypi.simple.v1+json")
            links = "".join(
                f'<a href="/files/{n}#sha256={h}"'
                f'{f" data-yanked={html.escape(y, quote=True)!r}" if y else ""}>{n}</a><br>\n'
                for n, h, y in entries)
            return self._send(f"<!DOCTYPE html><html><body>{links}</body></html>".encode(),
                              "text/html")

        def _send(self, body: bytes, kind: str, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    python_for("cp312")
    base = tmp_path_factory.mktemp("upstream")
    files = base / "files"
    _sdists(files, base / "work")
    # What a lock of the fixture pins for cp312, from this machine's configured indexes.
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
                    "--python-version", "3.12", "--dest", str(files), "build",
                    "setuptools>=61"], check=True, capture_output=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(files))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    root = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield Upstream(f"{root}/simple/", f"{root}/html/simple/", files)
    finally:
        server.shutdown()
        server.server_close()


def farm(tmp_path: Path, index_url: str) -> Path:
    (tmp_path / "wheelfarm.toml").write_text(f'index-url = "{index_url}"\npythons = ["cp312"]\n')
    return tmp_path


def test_add_pins_the_index_hash_and_locks(upstream: Upstream, tmp_path: Path) -> None:
    root = farm(tmp_path, upstream.url)
    out = ok(wheelfarm("add", "fastadd==0.1.0", cwd=root))
    recipe = root / "recipes" / "fastadd.toml"
    assert f"wrote {Path('recipes') / 'fastadd.toml'}" in out
    assert f'sha256 = "{upstream.sha256("fastadd-0.1.0.tar.gz")}"' in recipe.read_text()
    lock = json.loads((root / "recipes" / "fastadd.lock").read_text())
    assert lock["index-url"] == upstream.url and list(lock["pythons"]) == ["cp312"]
    assert "setuptools" in {p["name"] for p in lock["pythons"]["cp312"]["packages"]}

    again = wheelfarm("add", "fastadd==0.2.0", "--no-lock", cwd=root)
    assert again.returncode == 2, again.stderr
    assert again.stderr.startswith(f"error: {Path('recipes') / 'fastadd.toml'}: a recipe is "
                                   "already there (--force replaces it")
    ok(wheelfarm("add", "fastadd==0.2.0", "--no-lock", "--force", cwd=root))
    assert upstream.sha256("fastadd-0.2.0.tar.gz") in recipe.read_text()

    missing = wheelfarm("add", "fastadd==9.9", "--dir", "other", cwd=root)
    assert missing.returncode == 2
    assert "no sdist of fastadd==9.9 (newest releases: 0.1.0, 0.1.1, 0.2.0)" in missing.stderr
    assert not (root / "other").exists()


def test_add_from_git_pins_the_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(PROJECTS / "fastadd", repo)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    subprocess.run([*git, "tag", "-a", "v0.1.0", "-m", "annotated"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    ok(wheelfarm("add", "fastadd==0.1.0", "--git", repo.as_uri(), "--rev", "v0.1.0",
                 "--no-lock", cwd=tmp_path))
    text = (tmp_path / "recipes" / "fastadd.toml").read_text()
    assert f'rev = "{commit}"' in text and f'git = "{repo.as_uri()}"' in text
    bad = wheelfarm("add", "fastadd==0.1.0", "--git", repo.as_uri(), "--rev", "nope",
                    "--dir", "r2", "--no-lock", cwd=tmp_path)
    assert bad.returncode == 2 and "--rev 'nope': no branch or tag of that name" in bad.stderr


@pytest.mark.parametrize("kind", ["json", "html"])
@pytest.mark.parametrize(("track", "latest"), [
    (None, "0.2.0"),  # 0.2.1 is yanked, 0.3.0rc1 a pre-release
    ("patch", "0.1.1"),
    ("<0.1.1", None),
])
def test_outdated(upstream: Upstream, tmp_path: Path, kind: str, track: str | None,
                  latest: str | None) -> None:
    root = farm(tmp_path, upstream.url if kind == "json" else upstream.html_url)
    (root / "recipes").mkdir()
    (root / "recipes" / "fastadd.toml").write_text(
        '[package]\nname = "fastadd"\nversion = "0.1.0"\n'
        + (f'track = "{track}"\n' if track else "")
        + f'[source]\npypi = true\nsha256 = "{upstream.sha256("fastadd-0.1.0.tar.gz")}"\n')
    shutil.copy(RECIPES / "fastadd.toml", root / "recipes" / "local.toml")  # a path source
    (root / "recipes" / "local.toml").write_text((RECIPES / "fastadd.toml").read_text().replace(
        'name = "fastadd"', 'name = "local"').replace(
        "../tests/fixtures", str(PROJECTS.parent)))
    listed = json.loads(ok(wheelfarm("outdated", "recipes", "--json", cwd=root)))
    assert listed == [{"recipe": str(Path("recipes") / "fastadd.toml"), "name": "fastadd",
                       "version": "0.1.0", "latest": latest, "newest": "0.2.0",
                       "track": track}]
    text = wheelfarm("outdated", "recipes", cwd=root)
    assert text.returncode == 0  # outdated or not: the JSON says which
    assert ("-> " + latest in text.stdout) if latest else "outside track" in text.stdout


def _commented_recipe(root: Path, upstream: Upstream) -> Path:
    """recipes/fastadd.toml, its comments and settings as shipped, from the index."""
    text = (RECIPES / "fastadd.toml").read_text().replace(
        'path = "../tests/fixtures/projects/fastadd"',
        f'pypi = true\nsha256 = "{upstream.sha256("fastadd-0.1.0.tar.gz")}"  # from the index'
    ).replace('pythons = ["cp39", "cp312"]', 'pythons = ["cp312"]')
    path = root / "recipes" / "fastadd.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_bump_changes_version_hash_and_lock_only_and_builds(upstream: Upstream,
                                                            tmp_path: Path) -> None:
    root = farm(tmp_path, upstream.url)
    recipe = _commented_recipe(root, upstream)
    before = recipe.read_text()
    refused = wheelfarm("bump", "recipes/fastadd.toml", "--to", "9.9", cwd=root)
    assert refused.returncode == 2 and recipe.read_text() == before

    out = ok(wheelfarm("bump", "recipes/fastadd.toml", cwd=root))
    assert "recipes/fastadd.toml: 0.1.0 -> 0.2.0" in out
    assert f"wrote {Path('recipes') / 'fastadd.lock'}" in out
    diff = [line for line in difflib.unified_diff(before.splitlines(),
                                                   recipe.read_text().splitlines(),
                                                   lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    old, new = upstream.sha256("fastadd-0.1.0.tar.gz"), upstream.sha256("fastadd-0.2.0.tar.gz")
    assert diff == ['-version = "0.1.0"', '+version = "0.2.0"',
                    f'-sha256 = "{old}"  # from the index', f'+sha256 = "{new}"  # from the index']
    lock = json.loads((root / "recipes" / "fastadd.lock").read_text())
    assert lock["index-url"] == upstream.url and list(lock["pythons"]) == ["cp312"]

    # Already at the newest release it follows: nothing changes, exit 0.
    assert "is the newest release it follows" in ok(wheelfarm("bump", "recipes/fastadd.toml",
                                                              cwd=root))
    # The bumped recipe and its lock build, installing only what the lock pins.
    built = wheelfarm("build", "recipes/fastadd.toml", "--locked", "--no-compare-upstream",
                      "--out", "wheelhouse", cwd=root)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "no lock file" not in built.stderr
    wheels = [w.name for w in (root / "wheelhouse").glob("*.whl")]
    assert len(wheels) == 1 and wheels[0].startswith("fastadd-0.2.0-cp312-cp312-manylinux")


def test_bump_pins_a_recipe_that_has_no_hash(upstream: Upstream, tmp_path: Path) -> None:
    root = farm(tmp_path, upstream.url)
    path = root / "fastadd.toml"
    path.write_text('[package]\nname = "fastadd"\nversion = "0.1.1"\n\n[source]\npypi = true\n')
    refused = wheelfarm("build", "fastadd.toml", cwd=root)
    assert refused.returncode == 2
    assert "'wheelfarm bump fastadd.toml --to 0.1.1'" in refused.stderr
    ok(wheelfarm("bump", "fastadd.toml", "--to", "0.1.1", "--no-lock", cwd=root))
    assert path.read_text().endswith(
        f'pypi = true\nsha256 = "{upstream.sha256("fastadd-0.1.1.tar.gz")}"\n')


CIBW = """
[tool.cibuildwheel]
test-requires = []
test-command = "python -c 'import fastadd, sys; sys.exit(fastadd.add(1, 2))'"
build-verbosity = 1
"""


def test_cibuildwheel_test_command_decides_the_build(tmp_path: Path) -> None:
    python_for("cp312")
    project = tmp_path / "proj"
    shutil.copytree(PROJECTS / "fastadd", project)
    with (project / "pyproject.toml").open("a") as fh:
        fh.write(CIBW)
    args = ("build", "proj", "--target", "native", "--python", "cp312",
            "--no-compare-upstream", "--out", "wheelhouse")
    warning = (f"warning: {Path('proj') / 'pyproject.toml'}: tool.cibuildwheel.build-verbosity: "
               "cibuildwheel setting not used by wheelfarm (ignored)")
    failed = wheelfarm(*args, cwd=tmp_path)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert warning in failed.stderr
    assert "test on cp312 failed: python -c 'import fastadd, sys; sys.exit(fastadd.add(1, 2))'" \
        in failed.stdout + failed.stderr
    # CIBW_* over [tool.cibuildwheel], as in cibuildwheel: a passing command passes.
    passed = wheelfarm(*args, cwd=tmp_path, env={
        "CIBW_TEST_COMMAND": "python -c 'import fastadd; assert fastadd.add(1, 2) == 3'"})
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert warning in passed.stderr
    assert "tool.cibuildwheel.test-command is overridden by CIBW_TEST_COMMAND" in passed.stderr
