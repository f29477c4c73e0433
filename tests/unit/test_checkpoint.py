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


def test_group_commit_covers_concurrent_changes_with_few_writes(tmp_path: Path) -> None:
    ipam = pool(200)
    ckpt = Checkpoint(tmp_path / "ckpt.json")
    ckpt.sync(ipam)
    writes_before = ckpt.writes
    barrier = threading.Barrier(100)
    errors: list[BaseException] = []

    def add(n: int) -> None:
        try:
            barrier.wait()
            ipam.allocate(AttachmentKey(f"c{n}", "eth0"))
            ckpt.sync(ipam)
            # Durable when sync returns: the file holds this allocation.
            data: Any = json.loads((tmp_path / "ckpt.json").read_text())["payload"]
            assert f"c{n}" in {a["container_id"] for a in data["allocations"]}
        except BaseException as e:  # collected: assertions in threads must surface
            errors.append(e)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert 1 <= ckpt.writes - writes_before <= 100
    ckpt.sync(ipam)  # nothing new: no write
    assert Checkpoint(tmp_path / "ckpt.json").load() == ipam.to_checkpoint()
