"""Shared by the publish, verify, serve and store-cache tests: throwaway gpg keys, a
wheel really built by the farm, one published index on the filesystem or S3 store (the
fixtures of tests/conftest.py and tests/integration/conftest.py make them), and what
an installer sees of it."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from wheelfarm.build import provenance
from wheelfarm.publish.signing import Keyring
from wheelfarm.publish.store import Store, open_store
from wheelfarm.publish.verify import Report, verify

from .helpers import PROJECTS, ok, python_for, require, tree_digest, wheelfarm

# -- keys ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Key:
    home: Path  # a GNUPGHOME holding the secret key
    fingerprint: str
    public: Path  # the armored public key, as a packager receives it


def make_key(home: Path, name: str) -> Key:
    home.mkdir(mode=0o700, parents=True)
    gpg = ["gpg", "--batch", "--homedir", str(home)]
    subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", f"{name} <{name}@example.org>",
                    "ed25519", "sign", "never"], check=True, capture_output=True)
    listing = subprocess.run([*gpg, "--list-secret-keys", "--with-colons"], check=True,
                             capture_output=True, text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                       if line.startswith("fpr:"))
    public = home.parent / f"{name}.asc"
    public.write_bytes(subprocess.run([*gpg, "--armor", "--export", fingerprint], check=True,
                                      capture_output=True).stdout)
    return Key(home, fingerprint, public)


@contextlib.contextmanager
def packager_gpg(work: Path, public: Path) -> Iterator[list[str]]:
    """gpg with a keyring of the farm's public key alone, as a packager sets it up."""
    home = work / "packager-gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--homedir", str(home)]
    subprocess.run([*gpg, "--import", str(public)], check=True, capture_output=True)
    try:
        yield gpg
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"],
                       capture_output=True, check=False)


@contextlib.contextmanager
def throwaway_keys() -> Iterator[tuple[Key, Key]]:
    """(the farm's key, an unrelated key) in throwaway keyrings."""
    require("gpg")
    base = Path(tempfile.mkdtemp(prefix="wfg-"))  # short: gpg-agent's socket lives there
    made = [make_key(base / "farm", "farm"), make_key(base / "other", "other")]
    try:
        yield made[0], made[1]
    finally:
        for key in made:
            subprocess.run(["gpgconf", "--homedir", str(key.home), "--kill", "all"],
                           capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


# -- wheels -------------------------------------------------------------------------------------

def built_fastadd(base: Path) -> Path:
    """``wheelfarm build`` of the C fixture for cp312 under ``base``, once: the directory
    holding its wheel."""
    out = base / "out"
    if not list(out.glob("*.whl")):
        require("gcc")
        python_for("cp312")
        base.mkdir(exist_ok=True)
        result = wheelfarm("build", PROJECTS / "fastadd", "--target", "native", "--executor",
                           "host", "--python", "cp312", "--out", out, "--farm", base, cwd=base)
        assert result.returncode == 0, result.stdout + result.stderr
    return out


# -- stores -------------------------------------------------------------------------------------

def aws_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}


@dataclass
class Index:
    """One published index under test, and how to reach it from the CLI and in process."""

    kind: str  # "fs" or "s3"
    url: str
    env: dict[str, str]
    key: Key
    work: Path
    root: Path | None = None  # the directory, for the filesystem store
    client: Any = None  # boto3 client, for S3
    bucket: str = ""
    state: Path = field(init=False)

    def __post_init__(self) -> None:
        self.state = self.work / "verify-state"

    @functools.cached_property
    def store(self) -> Store:
        return open_store(self.url)

    def cli(self, *args: str | os.PathLike[str], env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        return wheelfarm(*args, cwd=self.work, env={**self.env, **(env or {})}, timeout=600)

    def publish(self, *dirs: Path, extra: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
        return self.cli("publish", *dirs, "--to", self.url, *extra)

    def verify(self, key: Path | None = None, state: Path | None = None) -> Report:
        with Keyring(key or self.key.public) as keyring:
            return verify(self.store, keyring, state or self.state)

    def snapshot(self) -> dict[str, str]:
        """Every stored object and its digest, to prove a refused operation changed nothing."""
        if self.root is not None:
            return tree_digest(self.root)
        out = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = obj["ETag"]
        return out

    def mirror(self, dest: Path) -> Path:
        """A local copy of what SHA256SUMS lists (what ``aws s3 sync`` would fetch)."""
        store = self.store
        sums = store.get("SHA256SUMS")
        assert sums is not None
        for name in ("SHA256SUMS", "SHA256SUMS.asc", "InRelease"):
            data = store.get(name)
            assert data is not None
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(data)
        for line in sums.decode().splitlines():
            key = line.split("  ", 1)[1]
            data = store.get(key)
            assert data is not None, key
            (dest / key).parent.mkdir(parents=True, exist_ok=True)
            (dest / key).write_bytes(data)
        return dest


# -- the store as a cache --------------------------------------------------------------------

FASTADD_ARGS = ("--target", "native", "--executor", "host", "--python", "cp312")


def publish_fastadd(index: Index, fastadd_dir: Path) -> tuple[Path, str, str]:
    """Publish the fastadd build (the ``fastadd_dir`` fixture); its wheel, job key and
    sha256."""
    wheel = next(fastadd_dir.glob("*.whl"))
    named = provenance.job_key(provenance.path_for(wheel).read_bytes())
    assert named is not None
    ok(index.publish(fastadd_dir))
    return wheel, *named


def farm_using(index: Index, directory: Path) -> Path:
    """Another farm, whose own cache is empty, configured to publish to ``index``."""
    directory.mkdir()
    (directory / "wheelfarm.toml").write_text(f'[publish]\nurl = "{index.url}"\n',
                                              encoding="utf-8")
    return directory


def build_fastadd_in(index: Index, farm: Path, out: Path) -> dict[str, Any]:
    """``wheelfarm build`` of the C fixture in ``farm`` into ``out``: its one job's report."""
    report = out.parent / f"{out.name}-report.json"
    built = index.cli("build", PROJECTS / "fastadd", *FASTADD_ARGS, "--farm", farm, "--out", out,
                      "--json", report)
    ok(built)
    (job,) = json.loads(report.read_text())["jobs"]
    assert isinstance(job, dict)
    return job


# -- what a reader sees -------------------------------------------------------------------------

class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def read_like_pip(store: Store, *, same_view: bool = True) -> dict[str, str]:
    """Follow every link from the root pages, HTML and JSON, as an installer would; assert
    each resolves and matches its hash. Returns the visible wheels (file name -> sha256).

    ``same_view``: the HTML and JSON pages must list the same files, as on a filesystem
    store, whose switch is atomic; on S3 a crash between two page writes may leave them
    one generation apart, each whole by itself.
    """
    root_json, root_html = store.get("simple/index.json"), store.get("simple/index.html")
    if root_json is None:
        assert root_html is None
        return {}
    anchors = _Anchors()
    anchors.feed((root_html or b"").decode())
    by_json = [p["name"] for p in json.loads(root_json)["projects"]]
    by_html = [h.rstrip("/") for h in anchors.hrefs]
    if same_view:
        assert sorted(by_html) == sorted(by_json)
    seen: dict[str, str] = {}
    for project in sorted(set(by_json) | set(by_html)):
        listed: list[set[str]] = []
        if project in by_json:
            page = store.get(f"simple/{project}/index.json")
            assert page is not None, f"the root links {project}/, which is missing"
            files = json.loads(page)["files"]
            listed.append({f["filename"] for f in files})
            for entry in files:
                meta = entry["core-metadata"]
                seen.update(_resolve(store, project, entry["url"], entry["hashes"]["sha256"],
                                     meta["sha256"] if meta else None))
        if project in by_html:
            page = store.get(f"simple/{project}/index.html")
            assert page is not None, f"the root links {project}/, which is missing"
            anchors = _Anchors()
            anchors.feed(page.decode())
            names = set()
            for href in anchors.hrefs:
                url, _, fragment = href.partition("#sha256=")
                names.update(_resolve(store, project, url, fragment, None))
            listed.append(names)
        if same_view:
            assert all(names == listed[0] for names in listed), (project, listed)
    return seen


def _resolve(store: Store, project: str, url: str, sha256: str,
             metadata_sha256: str | None) -> dict[str, str]:
    key = url.removeprefix("../../")
    data = store.get(key)
    assert data is not None, f"{project} links {key}, which is missing"
    assert hashlib.sha256(data).hexdigest() == sha256, f"{key}: hash mismatch"
    if metadata_sha256 is not None:
        sidecar = store.get(key + ".metadata")
        assert sidecar is not None, f"{key}.metadata is missing"
        assert hashlib.sha256(sidecar).hexdigest() == metadata_sha256
    return {key.removeprefix("files/"): sha256}


def expire_soon() -> list[str]:
    """Valid-Until about two seconds from now."""
    return ["--valid-days", f"{2 / 86400:.8f}"]


def now() -> datetime:
    return datetime.now(UTC)
