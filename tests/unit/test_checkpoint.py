"""The agent's checkpoint: atomic replace, tolerant of absence, strict on corruption,
and group commit (many syncs, few writes)."""

from __future__ import annotations

import ipaddress
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from vpcnet.agent.checkpoint import Checkpoint
from vpcnet.agent.ipam import AttachmentKey, Ipam
from vpcnet.domain import EniRecord
from vpcnet.errors import CheckpointError


def pool(n: int = 50) -> Ipam:
    ipam = Ipam()
    ipam.set_enis(
        [
            EniRecord(
                eni_id="eni-0",
                mac="02:00:00:00:00:00",
                device_index=0,
                subnet_id="s",
                subnet_cidr=ipaddress.IPv4Network("10.0.0.0/16"),
                primary_ip=ipaddress.IPv4Address("10.0.0.1"),
                ips=tuple(ipaddress.IPv4Address(f"10.0.1.{i}") for i in range(1, n + 1)),
                is_primary=True,
            )
        ]
    )
    return ipam


def test_missing_file_is_no_checkpoint(tmp_path: Path) -> None:
    assert Checkpoint(tmp_path / "none" / "ckpt.json").load() is None


def test_write_then_load_round_trips_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ckpt.json"
    ckpt = Checkpoint(path)
    ckpt.write({"a": [1, 2], "b": "x"})
    ckpt.write({"a": [3]})
    assert Checkpoint(path).load() == {"a": [3]}
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt.json"]
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"[]", b'{"format": 2, "payload": {}}', b'{"format": 1}', b"\xff\xfe", b'{"format": 1, "payload": 3}'],
)
def test_corrupt_checkpoint_raises(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ckpt.json"
    path.write_bytes(content)
    with pytest.raises(CheckpointError):
        Checkpoint(path).load()


def test_unwritable_location_raises_checkpoint_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CheckpointError):
        Checkpoint(blocker / "ckpt.json").write({})


def test_sync_persists_the_pool_and_restores_it(tmp_path: Path) -> None:
    ipam = pool()
    ckpt = Checkpoint(tmp_path / "ckpt.json")
    a = ipam.allocate(AttachmentKey("c1", "eth0"), "ns", "p")
    ckpt.sync(ipam)
    data = Checkpoint(tmp_path / "ckpt.json").load()
    assert data is not None
    again = Ipam.from_checkpoint(data)
    assert again.get(AttachmentKey("c1", "eth0")) == a


class SlowDisk(Checkpoint):
    """A checkpoint whose next write waits until the test lets it finish (a slow fsync)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate_next = False
        self.writing = threading.Event()  # the gated write has begun
        self.finish = threading.Event()  # the test lets it complete

    def write(self, payload: Any) -> None:
        if self.gate_next:
            self.gate_next = False
            self.writing.set()
            assert self.finish.wait(60), "the test never released the write"
        super().write(payload)


def containers_on_disk(path: Path) -> set[str]:
    data: Any = json.loads(path.read_text())["payload"]
    return {a["container_id"] for a in data["allocations"]}


def test_group_commit_coalesces_queued_syncs_into_one_write_and_each_returns_durable(tmp_path: Path) -> None:
    """While one write is in flight, 99 more syncs queue; exactly one more write covers
    them all (2 writes for 100 syncs), and no sync returns before its change is on disk."""
    path = tmp_path / "ckpt.json"
    ipam = pool(200)
    ckpt = SlowDisk(path)
    ckpt.sync(ipam)
    writes_before = ckpt.writes
    errors: list[BaseException] = []
    allocated = threading.Semaphore(0)

    def add(n: int) -> None:
        try:
            ipam.allocate(AttachmentKey(f"c{n}", "eth0"))
            allocated.release()
            ckpt.sync(ipam)
            # Returned: the change must be in the file already, and the first write
            # (which cannot hold c1..c99) must have completed before anyone returned.
            assert ckpt.finish.is_set(), f"sync of c{n} returned while its write was pending"
            assert f"c{n}" in containers_on_disk(path)
        except BaseException as e:  # collected: assertions in threads must surface
            errors.append(e)

    ckpt.gate_next = True
    first = threading.Thread(target=add, args=(0,))
    first.start()
    assert ckpt.writing.wait(60)  # c0's write is in flight, holding the commit lock
    rest = [threading.Thread(target=add, args=(n,)) for n in range(1, 100)]
    for t in rest:
        t.start()
    for _ in rest:
        assert allocated.acquire(timeout=60)
    assert allocated.acquire(timeout=60)  # c0's own
    assert containers_on_disk(path) == set()  # nothing is on disk yet
    ckpt.finish.set()
    for t in [first, *rest]:
        t.join(60)
    assert errors == []
    assert ckpt.writes - writes_before == 2  # c0's, then one for all 99 that queued
    assert containers_on_disk(path) == {f"c{n}" for n in range(100)}
    ckpt.sync(ipam)  # nothing new: no write
    assert ckpt.writes - writes_before == 2
    assert Checkpoint(path).load() == ipam.to_checkpoint()
