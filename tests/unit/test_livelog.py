"""Following a running attempt's log (farm/livelog.py): the controller's append
and the worker's shipper, over real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from wheelfarm.errors import ConfigError
from wheelfarm.farm import livelog
from wheelfarm.farm.runners import ProcessRunner
from wheelfarm.farm.state import Lease


def _lease(token: str = "t1", n: int = 1) -> Lease:
    return Lease(job_id=7, key="ab" * 32, n=n, token=token, worker="w1", expires=0.0,
                 kind="build", recipe="r", target="linux_x86_64", python="cp312",
                 executor="host", pythons=("cp312",), timeout=60.0, spec={})


def test_append_takes_a_chunk_only_at_the_files_end(tmp_path: Path) -> None:
    path = tmp_path / "live" / "a.log"
    assert livelog.append(path, 0, b"one\n", 100) == 4
    assert livelog.append(path, 0, b"one\n", 100) == 4  # a repeat
    assert livelog.append(path, 9, b"far\n", 100) == 4  # a gap
    assert livelog.append(path, 4, b"two\n", 100) == 8
    assert livelog.append(path, 8, b"x" * 93, 100) == 8  # over the limit: nothing more
    assert path.read_bytes() == b"one\ntwo\n"
    with pytest.raises(ConfigError, match="at most"):
        livelog.append(path, 8, b"x" * (livelog.CHUNK + 1), 10 * livelog.CHUNK)


def test_append_does_not_follow_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    path = tmp_path / "a.log"
    path.symlink_to(target)
    with pytest.raises(OSError):
        livelog.append(path, 0, b"x\n", 100)
    assert target.read_bytes() == b""


def test_the_shipper_sends_what_each_log_gained(tmp_path: Path) -> None:
    one, two = _lease("t1", 1), _lease("t2", 2)
    held = [one, two]
    files = {one.token: tmp_path / "1.log", two.token: tmp_path / "2.log"}
    kept: dict[str, bytes] = {}

    def send(lease: Lease, offset: int, data: bytes) -> int:
        have = kept.get(lease.token, b"")
        if offset == len(have):
            kept[lease.token] = have + data
        return len(kept[lease.token])

    shipper = livelog.Shipper(send, lambda x: files[x.token], lambda: held)
    files[one.token].write_bytes(b"a\n")
    shipper.ship()  # the second attempt has no log yet: skipped
    files[one.token].write_bytes(b"a\nb\n")
    files[two.token].write_bytes(b"z\n")
    shipper.ship()
    shipper.ship()  # nothing new: nothing sent
    assert kept == {one.token: b"a\nb\n", two.token: b"z\n"}
    held.remove(one)
    shipper.ship()
    assert set(shipper._offsets) == {two.token}  # an ended attempt is forgotten


def test_the_shipper_ships_the_file_a_process_runner_writes(tmp_path: Path) -> None:
    lease = _lease()
    runner = ProcessRunner(broker=None, farm=tmp_path)  # type: ignore[arg-type]
    assert runner.attempt(lease).log == livelog.direct_path(tmp_path, lease.key, lease.n)
    assert livelog.shipped_path(tmp_path, lease.key, lease.n).parent != \
        livelog.direct_path(tmp_path, lease.key, lease.n).parent


def test_an_attempt_that_ended_meanwhile_is_skipped_quietly(tmp_path: Path) -> None:
    from wheelfarm.errors import LeaseLost

    ended, live = _lease("t1"), _lease("t2")
    for lease in (ended, live):
        (tmp_path / f"{lease.token}.log").write_bytes(b"x\n")
    sent: list[str] = []

    def send(lease: Lease, offset: int, data: bytes) -> int:
        if lease is ended:
            raise LeaseLost("the lease is not held")  # the controller's 409
        sent.append(lease.token)
        return offset + len(data)

    livelog.Shipper(send, lambda x: tmp_path / f"{x.token}.log", lambda: [ended, live]).ship()
    assert sent == ["t2"]
