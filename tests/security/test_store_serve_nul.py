"""`wheelfarm serve` answers odd paths with 4xx, never 500: a NUL byte in the path
(`/files/%00`) is not a file name."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from wheelfarm.publish.serve import make_app


def test_a_nul_byte_in_the_path_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.whl").write_bytes(b"x")
    client = TestClient(make_app(tmp_path), raise_server_exceptions=False)
    for path in ("/files/%00", "/files/a.whl%00", "/%00/", "/simple/%00x/"):
        response = client.get(path)
        assert 400 <= response.status_code < 500, (path, response.status_code)
    assert client.get("/files/a.whl").content == b"x"
