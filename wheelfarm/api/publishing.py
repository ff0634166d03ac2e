"""The API's publishing part: changing, reading and verifying a signed index
(re-exported by :mod:`wheelfarm.api`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wheelfarm.api.common import HERE, load_config
from wheelfarm.errors import ConfigError

if TYPE_CHECKING:
    from wheelfarm.publish.publisher import Change, HistoryEntry, Publisher
    from wheelfarm.publish.store import Store
    from wheelfarm.publish.verify import Report


# -- publishing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Index:
    """Which index to change and how to sign its new generation."""

    url: str | None = None  # None: [publish] url of the farm
    farm_dir: Path = HERE
    sign_key: str | None = None  # None: WHEELFARM_SIGN_KEY, then [publish] sign-key
    valid_days: float | None = None  # None: [publish] valid-days


@dataclass(frozen=True)
class Published:
    outcome: Change
    url: str


def open_index(url: str | None, farm_dir: Path = HERE) -> Store:
    """The store at ``url``, or at the farm's [publish] url."""
    from wheelfarm.publish.store import open_store

    config = load_config(farm_dir)
    url = url or config.publish.url
    if not url:
        raise ConfigError("no index URL: name one (a directory, file://PATH or "
                          "s3://BUCKET/PREFIX) or set url in the [publish] table")
    return open_store(url, endpoint_url=config.publish.s3_endpoint_url)


def publisher(index: Index) -> Publisher:
    from datetime import timedelta

    from wheelfarm.publish.publisher import Publisher
    from wheelfarm.publish.signing import Signer, resolve_key

    config = load_config(index.farm_dir)
    store = open_index(index.url, index.farm_dir)
    signer = Signer(resolve_key(index.sign_key, config.publish.sign_key))
    days = index.valid_days if index.valid_days is not None else config.publish.valid_days
    return Publisher(store, signer, valid_for=timedelta(days=days))


def _change(index: Index, act: Callable[[Publisher], Change]) -> Published:
    chosen = publisher(index)
    done = Published(act(chosen), chosen.store.url)
    config = load_config(index.farm_dir)
    if done.outcome.created and config.notify:
        from wheelfarm.farm.notify import service

        # Into the farm's state, for its controller to deliver: never waited for.
        service.publish_news(config, {
            "generation": done.outcome.generation, "change": done.outcome.change,
            "added": list(done.outcome.published), "index": done.url,
            "signer": chosen.signer.fingerprint})
    return done


def publish(dirs: Sequence[Path], index: Index = Index()) -> Published:
    """Publish the wheels in ``dirs`` (with their provenance) as a new signed generation."""
    return _change(index, lambda p: p.publish(list(dirs)))


def rollback(index: Index = Index(), generation: int | None = None) -> Published:
    return _change(index, lambda p: p.rollback(generation))


def refresh(index: Index = Index()) -> Published:
    return _change(index, lambda p: p.refresh())


def yank(index: Index, spec: str, reason: str = "") -> Published:
    return _change(index, lambda p: p.yank(spec, reason))


def unyank(index: Index, spec: str) -> Published:
    return _change(index, lambda p: p.unyank(spec))


def history(url: str | None = None, *, limit: int = 20,
            farm_dir: Path = HERE) -> tuple[str, list[HistoryEntry]]:
    """The index's URL and its newest ``limit`` generations, newest first."""
    from wheelfarm.publish import publisher as pub

    store = open_index(url, farm_dir)
    return store.url, pub.history(store, limit)


def verify(source: str, key_file: Path, state_dir: Path | None = None) -> Report:
    """Verify an index (a directory or URL) against the farm's public key; the
    report names every failure (none: ``report.ok``)."""
    from wheelfarm.publish import verify as v
    from wheelfarm.publish.signing import Keyring
    from wheelfarm.publish.store import open_store

    with Keyring(key_file) as keyring:
        return v.verify(open_store(source, read_only=True), keyring,
                        state_dir or v.default_state_dir())
