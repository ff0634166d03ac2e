"""The published index as the dashboard and ``/metrics`` read it: the live
generation's wheels of a project with the distributions they run on, and the
generations with what each changed. Read-only: nothing here makes a generation
live or writes to the store (unlike :meth:`Generations.head`), and signatures
are not checked (``wheelfarm verify`` does that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from wheelfarm.errors import StoreError, WheelfarmError
from wheelfarm.plan.targets import DISTROS
from wheelfarm.publish.artifacts import distros
from wheelfarm.publish.generations import Generations
from wheelfarm.publish.manifest import Release
from wheelfarm.publish.store import Store, open_store


@dataclass(frozen=True)
class WheelRow:
    filename: str
    uploaded: str
    yanked: str | None
    test: str | None
    runs_on: str  # "glibc 2.17+: RHEL 7+, Debian 8+, Ubuntu 14.04+", "macOS 11.0+ (arm64)"


@dataclass(frozen=True)
class GenerationRow:
    release: Release
    live: bool
    by: str  # who published it, where the generation says


def runs_on(filename: str) -> str:
    """Where a wheel runs, in words (see :func:`wheelfarm.publish.artifacts.distros`)."""
    found = distros(filename)
    if found.get("glibc") == "any":
        return "anywhere (pure Python)"
    if "macos" in found:
        return f"macOS {found['macos']}+ ({found['arch']})"
    if "glibc" not in found:
        return "no distribution claim (not a manylinux wheel)"
    named = ", ".join(f"{d} {found[d]}" for d in DISTROS if found.get(d))
    return f"glibc {found['glibc']}+ ({found.get('arch', '')}): {named or 'none listed'}"


def distro_context() -> dict[str, Any]:
    """The glibc of each distribution release, for the table a recipe page shows."""
    table = [(d, [(r, f"{g[0]}.{g[1]}") for r, g in releases])
             for d, releases in DISTROS.items()]
    return {"distro_table": table,
            "distro_releases": range(1, max(len(r) for _, r in table) + 1)}


class IndexView:
    """The index at ``url``, opened on first use: a farm whose index is not
    there yet (or not reachable) still has a dashboard, whose index pages say why."""

    def __init__(self, url: str, endpoint_url: str | None = None,
                 farm: Path | None = None) -> None:
        if farm is not None and "://" not in url and not Path(url).is_absolute():
            url = str(farm / url)  # a [publish] url relative to the farm directory
        self.url = url
        self.endpoint_url = endpoint_url
        self._gens: Generations | None = None

    @property
    def gens(self) -> Generations:
        if self._gens is None:
            self._gens = Generations(open_store(self.url, endpoint_url=self.endpoint_url,
                                                read_only=True), None)
        return self._gens

    @property
    def store(self) -> Store:
        return self.gens.store

    def live(self) -> Release | None:
        generation = self.store.live_generation()
        if generation < 1:
            return None
        try:
            return self.gens.release_at(generation)[0]
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.url}: {exc}") from None

    def wheels(self, project: str) -> tuple[int | None, list[WheelRow]]:
        """The live generation and the project's wheels in it, newest version first."""
        release = self.live()
        name = canonicalize_name(project)
        if release is None or name not in release.projects:
            return (release.generation if release else None), []
        found = sorted(self.gens.project(release, name).artifacts,
                       key=lambda a: (a.version, a.filename), reverse=True)
        return release.generation, [WheelRow(a.filename, a.uploaded, a.yanked, a.test,
                                             runs_on(a.filename)) for a in found]

    def generations(self, limit: int = 50) -> list[GenerationRow]:
        latest = self.gens.latest()
        live = self.store.live_generation()
        rows = []
        for generation in range(latest, max(0, latest - limit), -1):
            release, _ = self.gens.release_at(generation)
            rows.append(GenerationRow(release, generation == live,
                                      release.by))
        return rows

    def generation_count(self) -> int:
        """Generations committed so far (each publish, rollback, yank or refresh)."""
        try:
            return self.gens.latest()
        except WheelfarmError:
            return 0
