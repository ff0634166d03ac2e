"""Publishing wheels into a signed, generational index; rollback, yank, refresh, history.

Every operation makes generation N+1 the same way: new artifacts first
(write-once, an existing name with other bytes is refused), then the bundles
of the projects that changed, then the signed root manifest, created only if
generation N+1 does not exist yet. A publisher that loses that race reads
the winner's generation and tries again on top of it, so no publish is lost.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
import random
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from wheelfarm.build import debuginfo, provenance, testplaces
from wheelfarm.build.cache import Record as CacheRecord
from wheelfarm.build.wheelcheck import check_sound
from wheelfarm.errors import ConfigError, DamagedStore, ImmutableError, PublishError
from wheelfarm.publish.artifacts import FileRef, IndexedWheel, Upload, read_upload
from wheelfarm.publish.generations import Generations, Head, clearsigned_text
from wheelfarm.publish.manifest import Release
from wheelfarm.publish.signing import Signer
from wheelfarm.publish.store import Store
from wheelfarm.publish.storecache import StoreCache

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
_SPEC = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*==\s*(\S+)\s*")


@dataclass(frozen=True)
class Change:
    generation: int  # the generation that is current afterwards
    created: bool  # False: nothing to change, no new generation
    change: str
    published: tuple[str, ...] = ()  # file names new in this generation
    unchanged: tuple[str, ...] = ()  # file names that were already published, same bytes


def collect(dirs: Sequence[Path]) -> list[Upload]:
    """Every ``*.whl`` (with its ``.intoto.json``) in ``dirs``, read and checked; no writes."""
    found: dict[str, Upload] = {}
    for directory in dirs:
        if not directory.is_dir():
            raise ConfigError(f"{directory}: not a directory")
        for path in sorted(directory.glob("*.whl")):
            upload = read_upload(path)  # a plain, normalized file name first
            check_sound(path)  # RECORD true, WHEEL and RECORD present: before any write
            other = found.get(upload.filename)
            if other is not None and other.data != upload.data:
                raise ConfigError(f"{upload.filename}: {other.path} and {path} differ")
            found.setdefault(upload.filename, upload)
    if not found:
        raise ConfigError(f"no wheels in {', '.join(str(d) for d in dirs)}")
    return [found[name] for name in sorted(found)]


def parse_spec(spec: str) -> tuple[str, Version]:
    m = _SPEC.fullmatch(spec)
    if not m:
        raise ConfigError(f"{spec!r}: expected NAME==VERSION, e.g. fastadd==0.1.0")
    try:
        return canonicalize_name(m.group(1)), Version(m.group(2))
    except InvalidVersion:
        raise ConfigError(f"{spec!r}: {m.group(2)!r} is not a valid version") from None


PUBLISHER_ENV = "WHEELFARM_PUBLISHER"


def publisher_name() -> str:
    """Who publishes, as each generation records it (``Published-By``):
    ``WHEELFARM_PUBLISHER`` (a CI job names itself there), else user@host."""
    named = os.environ.get(PUBLISHER_ENV, "").strip()
    if named:
        return named
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Publisher:
    def __init__(self, store: Store, signer: Signer, *, valid_for: timedelta = timedelta(days=30),
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.signer = signer
        self.now = now
        self.gens = Generations(store, signer, valid_for=valid_for, now=now, by=publisher_name())

    # -- operations ---------------------------------------------------------------------------

    def publish(self, dirs: Sequence[Path]) -> Change:
        uploads = collect(dirs)
        head = self.gens.head()
        if head.release is None and self.store.get("simple/index.html") is not None:
            raise ConfigError(f"{self.store.url} already holds a simple/ index that wheelfarm "
                              f"did not publish; publish into an empty directory or prefix")
        known = self._known(head, {u.project for u in uploads})
        records = self._upload(uploads, known)
        new = tuple(r.filename for r in records if r.filename not in known)
        if len(new) == 1:
            change = f"publish {new[0]}"
        else:
            shown = ", ".join(new[:5]) + (", ..." if len(new) > 5 else "")
            change = f"publish {len(new)} wheels: {shown}"

        def compute(head: Head) -> dict[str, FileRef] | None:
            projects = dict(head.projects)
            for project in sorted({r.project for r in records}):
                current = {a.filename: a for a in self._artifacts(head, project)}
                merged = dict(current)
                for r in (r for r in records if r.project == project):
                    have = current.get(r.filename)
                    if have is not None and have.sha256 != r.sha256:
                        raise _immutable(f"files/{r.filename}", have.sha256)
                    merged.setdefault(r.filename, r)
                if merged != current:
                    projects[project] = self.gens.prepare(project, list(merged.values()))
            return projects if projects != dict(head.projects) else None

        outcome = self._commit(change, compute)
        self._record_keys(uploads, records)
        unchanged = tuple(sorted(set(known) & {r.filename for r in records}))
        return replace(outcome, published=new if outcome.created else (), unchanged=unchanged)

    def rollback(self, to: int | None = None) -> Change:
        head = self.gens.head()
        if head.release is None:
            raise ConfigError(f"{self.store.url}: nothing is published there")
        target = head.generation - 1 if to is None else to
        if not 1 <= target < head.generation:
            raise ConfigError(f"--to {target}: expected a generation from 1 to "
                              f"{head.generation - 1} (the current one is {head.generation})")
        release, _ = self.gens.release_at(target)
        return self._commit(f"rollback to generation {target}", lambda head: dict(release.projects),
                            always=True)

    def yank(self, spec: str, reason: str = "") -> Change:
        if re.search(r"[\x00-\x1f\x7f]", reason):
            raise ConfigError("--reason: must be one line of text")
        project, version = parse_spec(spec)
        change = f"yank {project}=={version}" + (f": {reason}" if reason else "")
        return self._set_yanked(project, version, reason, change)

    def unyank(self, spec: str) -> Change:
        project, version = parse_spec(spec)
        return self._set_yanked(project, version, None, f"unyank {project}=={version}")

    def refresh(self) -> Change:
        """A new generation with the same pages and a new Valid-Until (for a cron job).

        Re-signing generation N in place could overwrite a newer generation a
        concurrent publisher just made live; a new number keeps every step a
        conditional create, and clients' rollback protection keeps working.
        """
        head = self.gens.head()
        if head.release is None:
            raise ConfigError(f"{self.store.url}: nothing is published there")
        return self._commit("refresh", lambda head: dict(head.projects), always=True)

    # -- helpers ------------------------------------------------------------------------------

    def _record_keys(self, uploads: Sequence[Upload], records: Sequence[IndexedWheel]) -> None:
        """After the commit: the job key of each published wheel, so later plans and
        builds that use this store as their cache find it (write-once, idempotent)."""
        published = {r.filename: r.sha256 for r in records}
        keyed = []
        for u in uploads:
            named = provenance.job_key(u.provenance)
            if named is not None and named[1] == published.get(u.filename):
                keyed.append(CacheRecord(named[0], named[1], u.filename))
        StoreCache(self.store).add(keyed)

    def _commit(self, change: str, compute: Callable[[Head], Mapping[str, FileRef] | None],
                always: bool = False) -> Change:
        for attempt in range(MAX_ATTEMPTS):
            head = self.gens.head()
            projects = compute(head)
            if projects is None and not always:
                return Change(head.generation, False, change)
            release = self.gens.commit(head, change, projects or {})
            if release is not None:
                # On S3 a slower racing switch may land after ours: bring the newest live again.
                self.gens.head()
                return Change(release.generation, True, change)
            logger.info("generation %d was committed by another publisher; trying again",
                        head.generation + 1)
            time.sleep(random.uniform(0, 0.05 * (attempt + 1)))
        raise PublishError(f"{self.store.url}: gave up after {MAX_ATTEMPTS} attempts; other "
                           f"publishers committed every generation first")

    def _artifacts(self, head: Head, project: str) -> tuple[IndexedWheel, ...]:
        if head.release is None or project not in head.projects:
            return ()
        return self.gens.project(head.release, project).artifacts

    def _known(self, head: Head, projects: set[str]) -> dict[str, IndexedWheel]:
        return {a.filename: a for p in projects for a in self._artifacts(head, p)}

    def _set_yanked(self, project: str, version: Version, reason: str | None,
                    change: str) -> Change:
        def compute(head: Head) -> dict[str, FileRef] | None:
            artifacts = self._artifacts(head, project)
            matching = [a for a in artifacts if a.version == version]
            if not matching:
                raise ConfigError(f"{project}=={version} is not published in generation "
                                  f"{head.generation} of {self.store.url}")
            updated = [replace(a, yanked=reason) if a.version == version else a
                       for a in artifacts]
            if updated == list(artifacts):
                return None
            return {**head.projects, project: self.gens.prepare(project, updated)}

        return self._commit(change, compute)

    def _upload(self, uploads: Sequence[Upload],
                known: Mapping[str, IndexedWheel]) -> list[IndexedWheel]:
        """Write each new wheel and its sidecars (write-once); its record.

        Every name is checked before the first write, so a refused publish
        changes nothing in the store.
        """
        digests = {u.filename: hashlib.sha256(u.data).hexdigest() for u in uploads}
        for u in uploads:
            have = known.get(u.filename)
            if have is not None:
                if have.sha256 != digests[u.filename]:
                    raise _immutable(f"files/{u.filename}", have.sha256)
                continue
            existing = self.store.get(f"files/{u.filename}")
            if existing is not None and existing != u.data:
                raise _immutable(f"files/{u.filename}", hashlib.sha256(existing).hexdigest())
            for build_id, blob in u.debug:
                existing = self.store.get(debuginfo.store_key(build_id))
                if existing is not None and existing != blob:
                    raise _immutable(debuginfo.store_key(build_id),
                                     hashlib.sha256(existing).hexdigest())
        return [known[u.filename] if u.filename in known else self._upload_one(u)
                for u in uploads]

    def _upload_one(self, u: Upload) -> IndexedWheel:
        key = f"files/{u.filename}"
        if not self.store.put_new(key, u.data):
            existing = self.store.get(key) or b""
            if existing != u.data:
                raise _immutable(key, hashlib.sha256(existing).hexdigest())
        sidecars = {".metadata": self._write_once(f"{key}.metadata", u.metadata, strict=True)}
        # Sidecars are made by this publish, or verified: a file found in the store is
        # listed only if it is exactly ours (provenance) or a signature by this farm's
        # key (.asc). Anything else was planted (no generation lists it: the wheel is not
        # in the head), so it is replaced.
        if u.provenance is not None:
            mine = u.provenance
            sidecars[".intoto.json"] = self._write_ours(f"{key}.intoto.json", mine,
                                                        lambda found: found == mine)
        sidecars[".asc"] = self._write_ours(
            f"{key}.asc", self.signer.detach(u.data),
            lambda found: self.signer.check_detached(u.data, found))
        # Debug files, by build-id, in the layout debuginfod clients ask for.
        debug = {b: self._write_once(debuginfo.store_key(b), blob, strict=True)
                 for b, blob in u.debug}
        tested = testplaces.recorded(u.provenance)  # (status, note) of its build's tests
        return IndexedWheel(
            filename=u.filename, sha256=hashlib.sha256(u.data).hexdigest(), size=len(u.data),
            uploaded=_iso(self.now()), requires_python=u.requires_python,
            requires_dist=u.requires_dist, sidecars=tuple(sorted(sidecars.items())),
            debuginfo=tuple(sorted(debug.items())),
            test=tested[0] if tested else None)

    def _write_ours(self, key: str, data: bytes, acceptable: Callable[[bytes], bool]
                    ) -> FileRef:
        if self.store.put_new(key, data):
            return FileRef.of(data)
        existing = self.store.get(key)
        if existing is not None and acceptable(existing):
            return FileRef.of(existing)
        logger.warning("%s: replacing a file this farm did not write", key)
        self.store.put(key, data)
        existing = self.store.get(key)
        if existing is None or not acceptable(existing):
            raise DamagedStore(f"{self.store.url}: {key} keeps changing under this publisher; "
                               f"the store is being altered")
        return FileRef.of(existing)

    def _write_once(self, key: str, data: bytes, strict: bool = False) -> FileRef:
        if self.store.put_new(key, data):
            return FileRef.of(data)
        existing = self.store.get(key)
        if existing is None:
            raise DamagedStore(f"{self.store.url}: {key} vanished while publishing")
        if strict and existing != data:
            raise DamagedStore(f"{self.store.url}: {key} differs from what its wheel contains; "
                               f"the store was altered")
        return FileRef.of(existing)


def _immutable(key: str, sha256: str) -> ImmutableError:
    return ImmutableError(
        f"{key} is already published with other bytes (sha256 {sha256[:16]}...); published "
        f"files never change: give the rebuild a build number ([build] number = N in the "
        f"recipe) so that its file name differs")


@dataclass(frozen=True)
class HistoryEntry:
    release: Release
    live: bool


def history(store: Store, limit: int = 20) -> list[HistoryEntry]:
    """The newest ``limit`` generations, newest first (read, not verified: use verify for that)."""
    gens = Generations(store, None)
    latest = gens.latest()
    live = store.live_generation()
    out = []
    for generation in range(latest, max(0, latest - limit), -1):
        release, _ = gens.release_at(generation)
        out.append(HistoryEntry(release, generation == live))
    return out


__all__ = [
    "Change",
    "HistoryEntry",
    "ImmutableError",
    "PublishError",
    "Publisher",
    "clearsigned_text",
    "collect",
    "history",
    "parse_spec",
]
