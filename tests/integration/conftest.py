"""Fixtures of the integration tests alone: the queue on both databases, a real S3 API,
and one published index on each store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .publish_support import Index, Key, aws_env


@pytest.fixture(params=["sqlite", "postgresql"])
def state_kind(request: pytest.FixtureRequest) -> str:
    """Integration tests of the queue run on both databases."""
    kind: str = request.param
    return kind


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A real S3 API: moto's threaded server on 127.0.0.1, started for these tests."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(params=["fs", "s3"])
def index(request: pytest.FixtureRequest, tmp_path: Path, keys: tuple[Key, Key],
          monkeypatch: pytest.MonkeyPatch) -> Index:
    """An empty index on the filesystem store, then on S3 (moto's server)."""
    farm = keys[0]
    env = {"GNUPGHOME": str(farm.home), "WHEELFARM_SIGN_KEY": farm.fingerprint}
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("GNUPGHOME", str(farm.home))
    if request.param == "fs":
        root = tmp_path / "index"
        return Index("fs", str(root), env, farm, work, root=root)
    import boto3

    endpoint = request.getfixturevalue("moto_endpoint")
    for name, value in aws_env(endpoint).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"wf-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    return Index("s3", f"s3://{bucket}/pypi", {**env, **aws_env(endpoint)}, farm, work,
                 client=client, bucket=bucket)
