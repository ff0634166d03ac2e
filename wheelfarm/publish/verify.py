"""Offline verification of a published index against the farm's public key.

Reads nothing but SOURCE (a store opened read-only: a directory, an http(s)
URL, or s3://) and the key file: the root manifest's signature and
freshness, that its generation is not older than one already seen from this
source (rollback protection, kept in a small state file), every listed
file's size and SHA-256, every wheel's detached signature, ``SHA256SUMS``
and its signature, and the live pages against the project manifests.
Runtime requirements the index cannot satisfy are listed as warnings.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from wheelfarm import fsutil
from wheelfarm.errors import ConfigError
from wheelfarm.publish.artifacts import FileRef, IndexedWheel
from wheelfarm.publish.manifest import ProjectManifest, Release, bundle, parse_project, parse_sums
from wheelfarm.publish.signing import Keyring
from wheelfarm.publish.store import PAGE_NAMES, ROOT_PAGES, Store, check_key


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "wheelfarm" / "verify"


@dataclass
class Report:
    source: str
    generation: int | None = None
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # requirements the index cannot satisfy
    files: int = 0
    signatures: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures


def verify(source: Store, keyring: Keyring, state_dir: Path, *,
           now: datetime | None = None) -> Report:
    return _Verifier(source, keyring, now or datetime.now(UTC)).run(state_dir)


class _Verifier:
    def __init__(self, source: Store, keyring: Keyring, now: datetime) -> None:
        self.source = source
        self.keyring = keyring
        self.now = now
        self.report = Report(source.url)
        self._later: list[Release] | None = None
        self._checked: set[str] = set()
        self._switching = False  # some live file is already at a newer generation

    def fail(self, message: str) -> None:
        self.report.failures.append(message)

    def run(self, state_dir: Path) -> Report:
        release, signed = self._release()
        if release is None or signed is None:
            return self.report
        state = _State(state_dir, self.source.url, self.keyring.fingerprints)
        if self._fresh(release) and state.check(release, signed, self.fail):
            state.save(release, signed, self.now)
        self._root(release)
        manifests = [m for project, ref in sorted(release.projects.items())
                     for m in self._project(release, project, ref)]
        self._sums(release, manifests)
        self.report.missing = missing_requirements(
            [a for m in manifests for a in m.artifacts], _available(manifests))
        return self.report

    # -- the root manifest --------------------------------------------------------------------

    def _release(self) -> tuple[Release | None, bytes | None]:
        signed = self.source.get("InRelease")
        if signed is None:
            self.fail("InRelease: missing (not a wheelfarm index, or nothing published yet)")
            return None, None
        text, problem = self.keyring.open_signed(signed)
        if text is None:
            self.fail(f"InRelease: {problem}")
            return None, None
        try:
            release = Release.parse(text)
        except ValueError as exc:
            self.fail(f"InRelease: malformed: {exc}")
            return None, None
        self.report.generation = release.generation
        return release, signed

    def _fresh(self, release: Release) -> bool:
        if self.now > release.valid_until:
            self.fail(f"InRelease: expired: generation {release.generation} was valid until "
                      f"{release.valid_until:%Y-%m-%d %H:%M} UTC; the publisher must run "
                      f"`wheelfarm refresh`")
            return False
        if release.date > self.now + timedelta(hours=1):
            self.report.warnings.append(f"InRelease: dated {release.date:%Y-%m-%d %H:%M} UTC, "
                                        f"in the future: check this machine's clock")
        return True

    def later(self, release: Release) -> list[Release]:
        """Signed generations committed after ``release`` (a switch may be under way)."""
        if self._later is None:
            self._later = []
            generation = release.generation + 1
            while (signed := self.source.get(f"generations/{generation}/InRelease")) is not None:
                text, _problem = self.keyring.open_signed(signed)
                try:
                    newer = Release.parse(text) if text is not None else None
                except ValueError:
                    newer = None
                if newer is None or newer.generation != generation:
                    break
                self._later.append(newer)
                generation += 1
        return self._later

    # -- pages and files ----------------------------------------------------------------------

    def _live(self, key: str, expected: FileRef | None, release: Release,
              alternatives: Iterable[tuple[int, FileRef | None]]) -> bytes | None:
        """Check a live file against ``release``, tolerating a newer generation's version."""
        data = self.source.get(key)
        self.report.files += 1
        got = FileRef.of(data) if data is not None else None
        if got == expected:
            return data
        for generation, ref in alternatives:
            if got == ref:
                self._switching = True
                self.report.warnings.append(
                    f"{key}: already as in generation {generation}, newer than the live "
                    f"{release.generation}: a publish is switching (or was interrupted; "
                    f"`wheelfarm refresh` completes it)")
                return data
        if data is None:
            self.fail(f"{key}: missing")
        elif expected is None:
            self.fail(f"{key}: not part of generation {release.generation}")
        else:
            self.fail(f"{key}: sha256 {got.sha256 if got else '-'} does not match the "
                      f"manifest's {expected.sha256} (altered)")
        return data

    def _root(self, release: Release) -> None:
        for key in (*ROOT_PAGES, "SHA256SUMS"):
            self._live(key, release.files.get(key), release,
                       ((r.generation, r.files.get(key)) for r in self.later(release)))

    def _manifest(self, project: str, ref: FileRef) -> ProjectManifest | None:
        key = f"{bundle(check_key(project), ref.sha256)}/manifest.json"
        data = self.source.get(key)
        if data is None or FileRef.of(data) != ref:
            self.fail(f"{key}: {'missing' if data is None else 'altered'}")
            return None
        try:
            return parse_project(data, project)
        except ValueError as exc:
            self.fail(f"{key}: {exc}")
            return None

    def _project(self, release: Release, project: str, ref: FileRef) -> list[ProjectManifest]:
        """The manifests whose pages are live for ``project``, with their files checked."""
        manifest = self._manifest(project, ref)
        if manifest is None:
            return []
        used = {manifest.pages[name].sha256: manifest for name in PAGE_NAMES}
        newer: list[tuple[int, ProjectManifest | None]] = []
        for later in self.later(release):
            later_ref = later.projects.get(project)
            newer.append((later.generation,
                          self._manifest(project, later_ref) if later_ref else None))
        accepted: dict[int, ProjectManifest] = {}
        for name in PAGE_NAMES:
            data = self._live(f"simple/{project}/{name}", manifest.pages[name], release,
                              ((g, m.pages[name] if m else None) for g, m in newer))
            if data is None:
                continue
            sha = hashlib.sha256(data).hexdigest()
            chosen = used.get(sha) or next(
                (m for _g, m in newer if m and m.pages[name].sha256 == sha), None)
            if chosen is not None:
                accepted[id(chosen)] = chosen
        for chosen in accepted.values():
            for artifact in chosen.artifacts:
                self._artifact(artifact)
        return list(accepted.values())

    def _artifact(self, artifact: IndexedWheel) -> None:
        wheel: bytes | None = None
        for key, ref in artifact.files():
            if key in self._checked:
                continue
            self._checked.add(key)
            data = self.source.get(key)
            self.report.files += 1
            if data is None:
                self.fail(f"{key}: missing" + (" signature" if key.endswith(".asc") else ""))
            elif FileRef.of(data) != ref:
                self.fail(f"{key}: sha256 does not match the manifest (altered)")
            elif key.endswith(".whl"):
                wheel = data
            elif key.endswith(".asc") and wheel is not None:
                problem = self.keyring.check_detached(wheel, data)
                self.report.signatures += 1
                if problem:
                    self.fail(f"{key}: {problem}")
        if artifact.sidecar(".asc") is None:
            self.fail(f"files/{artifact.filename}.asc: missing signature (not in the manifest)")

    def _sums(self, release: Release, manifests: list[ProjectManifest]) -> None:
        sums = self.source.get("SHA256SUMS")
        signature = self.source.get("SHA256SUMS.asc")
        if sums is None:
            return  # already reported as missing
        problem = "missing signature" if signature is None else \
            self.keyring.check_detached(sums, signature)
        self.report.signatures += signature is not None
        if problem and self._switching:
            # On S3 the checksums and their signature are two writes: mid-switch they may
            # come from two generations. SHA256SUMS itself matched a signed InRelease above.
            self.report.warnings.append(f"SHA256SUMS.asc: {problem}, while switching")
        elif problem:
            self.fail(f"SHA256SUMS.asc: {problem}")
        if self._switching:
            return  # its hash matched a signed generation; the mix of pages is mid-switch
        try:
            listed = parse_sums(sums)
        except ValueError as exc:
            self.fail(f"SHA256SUMS: {exc}")
            return
        expected = {key: ref.sha256 for m in manifests for key, ref in m.files()}
        for key in ROOT_PAGES:
            ref = release.files.get(key)
            if ref is not None:
                expected.setdefault(key, ref.sha256)
        wrong = sorted(k for k in expected.keys() | listed.keys()
                       if k in listed and expected.get(k) not in (None, listed[k]))
        for key in wrong[:20]:
            self.fail(f"SHA256SUMS: {key}: does not match the manifests")
        missing = sorted(expected.keys() - listed.keys())
        if missing:
            self.fail(f"SHA256SUMS: does not list {len(missing)} file(s), e.g. {missing[0]}")


def _available(manifests: Iterable[ProjectManifest]) -> dict[str, set[Version]]:
    out: dict[str, set[Version]] = {}
    for m in manifests:
        for a in m.artifacts:
            if a.yanked is None:
                out.setdefault(m.project, set()).add(a.version)
    return out


def missing_requirements(artifacts: Iterable[IndexedWheel],
                         available: Mapping[str, set[Version]]) -> list[str]:
    """Requirements of non-yanked artifacts that no version in the index satisfies.

    Requirements only for an extra are left out; other markers are kept, since
    a packager mirrors for every machine the index serves.
    """
    out: dict[str, None] = {}
    for a in artifacts:
        if a.yanked is not None:
            continue
        for text in a.requires_dist:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                out[f"{a.project} {a.version}: unparsable requirement {text!r}"] = None
                continue
            if req.marker is not None and "extra" in str(req.marker):
                continue
            versions = available.get(canonicalize_name(req.name), set())
            if not any(req.specifier.contains(v, prereleases=True) for v in versions):
                out[f"{a.project} {a.version} requires {text}"] = None
    return list(out)


class _State:
    """The newest generation seen from one source with one key (rollback protection)."""

    def __init__(self, state_dir: Path, source: str, fingerprints: Iterable[str]) -> None:
        ident = hashlib.sha256("\n".join([source, *sorted(fingerprints)]).encode()).hexdigest()
        self.path = state_dir / f"{ident[:32]}.json"
        self.source = source
        try:
            self.seen = json.loads(self.path.read_text())
        except FileNotFoundError:
            self.seen = None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: unreadable verification state: {exc}") from None

    def check(self, release: Release, signed: bytes, fail: Callable[[str], None]) -> bool:
        if not self.seen:
            return True
        seen_generation = int(self.seen["generation"])
        if release.generation < seen_generation:
            fail(f"InRelease: generation {release.generation} is older than generation "
                 f"{seen_generation}, seen from this source on {self.seen['checked']}: a "
                 f"replayed or stale copy of the index")
            return False
        if release.generation == seen_generation and \
                hashlib.sha256(signed).hexdigest() != self.seen["sha256"]:
            fail(f"InRelease: generation {release.generation} differs from the generation "
                 f"{seen_generation} seen from this source before: the index was forked")
            return False
        return True

    def save(self, release: Release, signed: bytes, now: datetime) -> None:
        try:
            fsutil.write_text(self.path, json.dumps({
                "source": self.source, "generation": release.generation,
                "sha256": hashlib.sha256(signed).hexdigest(),
                "checked": now.strftime("%Y-%m-%d %H:%M UTC")}, indent=2) + "\n")
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot keep verification state: {exc}") from None
