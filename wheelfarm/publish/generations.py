"""Generations of a published index: read the latest, commit the next, make it live.

A generation is committed by creating ``generations/<N>/InRelease`` with a
conditional write: of two publishers that read generation N-1, exactly one
creates N; the other gets ``None`` from :meth:`Generations.commit` and tries
again on top of N. Everything a generation lists (artifacts, project
bundles) is written before its commit; the live view switches after it. A
crash between the commit and the switch is repaired by the next reader of
the head: :meth:`Generations.head` makes the latest committed generation live
before anyone builds on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from wheelfarm.errors import DamagedStore, StoreError
from wheelfarm.publish.artifacts import FileRef, IndexedWheel
from wheelfarm.publish.index import render_root_html, render_root_json
from wheelfarm.publish.manifest import (
    ProjectManifest,
    Release,
    build_project,
    bundle,
    full_sums,
    parse_project,
    project_sums,
    splice_sums,
)
from wheelfarm.publish.signing import Signer
from wheelfarm.publish.store import ROOT_PAGES, Store, View

logger = logging.getLogger(__name__)

Opener = Callable[[bytes, str], str]  # (signed bytes, what) -> signed text


def clearsigned_text(data: bytes) -> str:
    """The text inside a clearsigned message, *without* checking the signature.

    Only for showing history; everything that is trusted goes through gpg.
    """
    text = data.decode("utf-8", "replace")
    head, sep, rest = text.partition("\n\n")
    body, sep2, _sig = rest.partition("\n-----BEGIN PGP SIGNATURE-----")
    if not (sep and sep2 and head.startswith("-----BEGIN PGP SIGNED MESSAGE-----")):
        raise ValueError("not a clearsigned message")
    return "".join(line[2:] if line.startswith("- ") else line
                   for line in (body + "\n").splitlines(keepends=True))


@dataclass(frozen=True)
class Head:
    """The latest committed generation (``release`` None: nothing published yet)."""

    release: Release | None
    signed: bytes | None = None

    @property
    def generation(self) -> int:
        return self.release.generation if self.release else 0

    @property
    def projects(self) -> Mapping[str, FileRef]:
        return self.release.projects if self.release else {}


def root_pages(projects: Mapping[str, object]) -> dict[str, bytes]:
    return {"simple/index.html": render_root_html(projects).encode(),
            "simple/index.json": render_root_json(projects).encode()}


class Generations:
    def __init__(self, store: Store, signer: Signer | None, *,
                 valid_for: timedelta = timedelta(days=30),
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 by: str = "") -> None:
        self.store = store
        self.by = by  # who publishes: each generation committed here says so
        self.signer = signer
        self.valid_for = valid_for
        self.now = now
        self._manifests: dict[str, ProjectManifest] = {}
        self._releases: dict[int, tuple[Release, bytes]] = {}

    # -- reading ------------------------------------------------------------------------------

    def _open(self, data: bytes, what: str) -> str:
        if self.signer is None:
            return clearsigned_text(data)
        return self.signer.open_own(data, what)

    def release_at(self, generation: int) -> tuple[Release, bytes]:
        # A committed generation never changes: read and check its signature once.
        cached = self._releases.get(generation)
        if cached is not None:
            return cached
        key = f"generations/{generation}/InRelease"
        data = self.store.get(key)
        if data is None:
            raise DamagedStore(f"{self.store.url}: {key} is missing")
        try:
            release = Release.parse(self._open(data, key))
        except ValueError as exc:
            raise DamagedStore(f"{self.store.url}: {key}: {exc}") from None
        if release.generation != generation:
            raise DamagedStore(f"{self.store.url}: {key} says generation {release.generation}")
        self._releases[generation] = (release, data)
        return release, data

    def latest(self) -> int:
        """The newest committed generation (which may not be live yet)."""
        generation = self.store.live_generation()
        while self.store.get(f"generations/{generation + 1}/InRelease") is not None:
            generation += 1
        return generation

    def head(self) -> Head:
        """The latest committed generation, made live first if it is not yet."""
        for _ in range(10):
            live = self.store.live_generation()
            latest = self.latest()
            if latest == 0:
                return Head(None)
            release, signed = self.release_at(latest)
            if latest == live or self.signer is None:
                return Head(release, signed)
            logger.info("generation %d is committed but not live; switching to it", latest)
            self._switch(release, signed)
        raise StoreError(f"{self.store.url}: the live view keeps changing under this publisher")

    def project(self, release: Release, project: str) -> ProjectManifest:
        ref = release.projects[project]
        cached = self._manifests.get(ref.sha256)
        if cached is not None:
            return cached
        key = f"{bundle(project, ref.sha256)}/manifest.json"
        data = self.store.get(key)
        if data is None or FileRef.of(data) != ref:
            raise DamagedStore(f"{self.store.url}: {key} is "
                               f"{'missing' if data is None else 'altered'}")
        try:
            manifest = parse_project(data, project)
        except ValueError as exc:
            raise DamagedStore(f"{self.store.url}: {key}: {exc}") from None
        self._manifests[ref.sha256] = manifest
        return manifest

    # -- writing ------------------------------------------------------------------------------

    def prepare(self, project: str, artifacts: list[IndexedWheel]) -> FileRef:
        """Write a project's bundle (pages, then its manifest) unless it exists; its ref."""
        manifest, data, pages = build_project(project, artifacts)
        ref = FileRef.of(data)
        prefix = bundle(project, ref.sha256)
        if self.store.get(f"{prefix}/manifest.json") != data:
            for name, page in pages.items():
                self.store.put(f"{prefix}/{name}", page)
            # Last: a bundle whose manifest exists is complete.
            self.store.put(f"{prefix}/manifest.json", data)
        self._manifests[ref.sha256] = manifest
        return ref

    def commit(self, head: Head, change: str, projects: Mapping[str, FileRef]
               ) -> Release | None:
        """Commit generation ``head + 1`` listing ``projects`` and make it live.

        None if another publisher committed that generation first.
        """
        assert self.signer is not None
        old = head.projects
        changed = tuple(sorted(p for p in old.keys() | projects.keys()
                               if old.get(p) != projects.get(p)))
        now = self.now().replace(microsecond=0)
        release = Release(head.generation + 1, now, now + self.valid_for, change, changed,
                          dict(projects), {}, by=self.by)
        root = _root_if_changed(head.release, release)
        sums = self._sums(head, release, root)
        root_refs = {key: FileRef.of(root[key]) for key in ROOT_PAGES} if root is not None \
            else {key: head.release.files[key] for key in ROOT_PAGES} if head.release else {}
        release = replace(release, files={"SHA256SUMS": FileRef.of(sums), **root_refs})
        signed = self.signer.clearsign(release.render())
        if not self.store.put_new(f"generations/{release.generation}/InRelease", signed):
            return None
        self._releases[release.generation] = (release, signed)
        self._switch(release, signed, root=root, sums=sums)
        return release

    def _sums(self, base: Head, target: Release, root: Mapping[str, bytes] | None) -> bytes:
        """SHA256SUMS of ``target``: the live one of ``base`` with the blocks of
        ``target.changed`` (and the root lines, if ``root``) spliced in, or rebuilt from
        every project if that fails."""
        blocks = {p: project_sums(self.project(target, p)) if p in target.projects else None
                  for p in target.changed}
        if base.release is not None:
            old = self.store.get("SHA256SUMS")
            if old is not None and FileRef.of(old) == base.release.files.get("SHA256SUMS"):
                try:
                    return splice_sums(old, list(base.projects), blocks, root)
                except ValueError:
                    logger.warning("SHA256SUMS does not have the expected layout; rebuilding it")
        every = {p: project_sums(self.project(target, p)) for p in target.projects}
        return full_sums(root or root_pages(target.projects), every)

    def _switch(self, release: Release, signed: bytes, *,
                root: Mapping[str, bytes] | None = None, sums: bytes | None = None) -> None:
        """Make ``release`` live: from the generation live now, which is usually the one
        before it, or further back when rolling forward after a crash or a race."""
        assert self.signer is not None
        live = self.store.live_generation()
        if live >= release.generation:
            return
        if live != release.generation - 1 or sums is None:
            # Rolling forward. A crash (or, on S3, a slower racing publisher) may have left
            # any page of the generations in between live: rewrite every one they touched.
            base = Head(self.release_at(live)[0]) if live else Head(None)
            old = base.projects
            touched = {p for p in old.keys() | release.projects.keys()
                       if old.get(p) != release.projects.get(p)}
            for between in range(live + 1, release.generation):
                touched.update(self.release_at(between)[0].changed)
            release_span = replace(release, changed=tuple(sorted(touched)))
            root = root_pages(release.projects)
            current = self.store.get("SHA256SUMS")
            if current is not None and FileRef.of(current) == release.files.get("SHA256SUMS"):
                sums = current  # the interrupted switch got that far
            else:
                sums = self._sums(base, release_span, root)
            changed = frozenset(touched)
            for key, data in [*root.items(), ("SHA256SUMS", sums)]:
                if FileRef.of(data) != release.files.get(key):
                    raise DamagedStore(f"{self.store.url}: cannot reproduce {key} of "
                                       f"generation {release.generation}")
        else:
            changed = frozenset(release.changed)  # root and sums are the ones it lists
        self.store.switch(View(
            generation=release.generation,
            projects={p: bundle(p, ref.sha256) for p, ref in release.projects.items()},
            changed=changed, root=root or {},
            signed={"SHA256SUMS": sums, "SHA256SUMS.asc": self.signer.detach(sums),
                    "InRelease": signed}))


def _root_if_changed(base: Release | None, target: Release) -> dict[str, bytes] | None:
    """The root pages of ``target``; None when they equal ``base``'s (same projects)."""
    if base is not None and base.projects.keys() == target.projects.keys():
        return None
    return root_pages(target.projects)
