"""``release-ok`` (IPv4 IPs and /80s alike) only once the checkpoint on disk holds the
release: the crash window between the pools' confirm and the checkpoint write.

Real parts: a real redis-server, the real pools, a real checkpoint file; the mirror is
flushed by hand (``RedisSync.flush``, what its thread runs) so that what it writes
before the checkpoint is written is seen deterministically. A "restart" is what the
agent does at start: the pools rebuilt from the checkpoint file on disk.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from vpcnet.agent.checkpoint import Checkpoint
from vpcnet.agent.ipam import AttachmentKey, Ipam
from vpcnet.agent.ipam6 import Ipam6
from vpcnet.agent.pools import NodePools, Released, released_in
from vpcnet.agent.redis_sync import RedisSync
from vpcnet.domain import EniRecord
from vpcnet.errors import CheckpointError, PoolExhausted

IP = ipaddress.IPv4Address
NET6 = ipaddress.IPv6Network
ASKED = IP("10.0.16.7")
ASKED6 = NET6("2001:db8:1:2:4::/80")
ENI = EniRecord(
    eni_id="eni-0",
    mac="02:00:00:00:00:00",
    device_index=0,
    subnet_id="subnet-1",
    subnet_cidr=ipaddress.IPv4Network("10.0.16.0/20"),
    primary_ip=IP("10.0.16.4"),
    ips=(IP("10.0.16.5"), IP("10.0.16.6"), ASKED),
    is_primary=True,
    ipv6_prefixes=(NET6("2001:db8:1:2:3::/80"), ASKED6),
    subnet_ipv6_cidr=NET6("2001:db8:1:2::/64"),
)


@dataclass
class Node:
    pools: NodePools
    checkpoint: Checkpoint
    sync: RedisSync
    client: redis.Redis[bytes]

    def release_ok(self) -> set[str]:
        return {m.decode() for m in self.client.smembers(self.sync.keys.release_ok)}

    def confirm(self) -> tuple[set[ipaddress.IPv4Address], set[ipaddress.IPv6Network]]:
        """The agent pass's confirm step (its checkpoint write comes next)."""
        return self.pools.ipam.confirm_release({ASKED}), self.pools.ipam6.confirm_release({ASKED6})

    def restarted(self) -> NodePools:
        on_disk = Checkpoint(self.checkpoint.path).load()
        assert on_disk is not None
        return NodePools.from_checkpoint(on_disk)


@pytest.fixture
def node(tmp_path: Path, redis_url: str, cluster_name: str) -> Iterator[Node]:
    pools = NodePools(Ipam(cooldown_seconds=30), Ipam6())
    pools.ipam.set_enis([ENI])
    pools.ipam6.set_enis([ENI])
    checkpoint = Checkpoint(tmp_path / "lib" / "checkpoint.json")
    checkpoint.sync(pools)  # the node as it ran before the control plane asked
    sync = RedisSync(redis_url, cluster_name, "node-a", pools.ipam, wake=threading.Event(),
                     ipam6=pools.ipam6, durable=lambda: released_in(checkpoint.durable()))
    client = redis.Redis.from_url(redis_url)
    sync.flush()
    yield Node(pools, checkpoint, sync, client)
    client.close()
    sync.stop()


def every_ip(pools: NodePools) -> set[ipaddress.IPv4Address]:
    """ADD until the pool is empty; the IPs handed out."""
    got = set()
    for n in range(10):
        try:
            got.add(pools.ipam.allocate(AttachmentKey(f"c{n}", "eth0")).ip)
        except PoolExhausted:
            break
    return got


def test_the_mirror_does_not_confirm_what_the_checkpoint_does_not_hold_yet(node: Node) -> None:
    confirmed, confirmed6 = node.confirm()
    assert confirmed == {ASKED} and confirmed6 == {ASKED6}
    node.sync.flush()  # the mirror thread's turn, before the pass writes its checkpoint
    node.sync.request_full_mirror()
    node.sync.flush()  # a full rewrite (periodic, after an outage or a failover) too
    node.sync.confirm_released(confirmed)  # even if called too early
    node.sync.confirm_released6(confirmed6)
    assert node.release_ok() == set()

    # A crash now: the restarted pool has the IP and the /80 and may use them, which is
    # safe only because the control plane was not told they are unused.
    restarted = node.restarted()
    assert ASKED in every_ip(restarted)
    assert ASKED6 in restarted.ipam6.usable()


def test_release_ok_once_written_and_a_restart_from_that_checkpoint_never_hands_them_out(
    node: Node,
) -> None:
    confirmed, confirmed6 = node.confirm()
    node.checkpoint.sync(node.pools)
    node.sync.confirm_released(confirmed)
    node.sync.confirm_released6(confirmed6)
    assert node.release_ok() == {str(ASKED), str(ASKED6)}

    restarted = node.restarted()
    assert every_ip(restarted) == {IP("10.0.16.5"), IP("10.0.16.6")}
    assert restarted.ipam6.usable() == [NET6("2001:db8:1:2:3::/80")]

    # A full rewrite (e.g. after a failover lost the set) puts them back: they are durable.
    node.client.delete(node.sync.keys.release_ok)
    node.sync.request_full_mirror()
    node.sync.flush()
    assert node.release_ok() == {str(ASKED), str(ASKED6)}


def test_a_failed_checkpoint_write_confirms_nothing(node: Node, tmp_path: Path) -> None:
    # The checkpoint's directory replaced by a file: the write fails, as on a full or
    # broken disk, and what is on disk stays the older checkpoint.
    node.checkpoint.path.unlink()
    node.checkpoint.path.parent.rmdir()
    node.checkpoint.path.parent.write_text("not a directory")
    confirmed, confirmed6 = node.confirm()
    with pytest.raises(CheckpointError):
        node.checkpoint.sync(node.pools)
    node.sync.confirm_released(confirmed)
    node.sync.confirm_released6(confirmed6)
    node.sync.request_full_mirror()
    node.sync.flush()
    assert node.release_ok() == set()


def test_released_in_reads_both_families_and_an_older_payload() -> None:
    pools = NodePools(Ipam(), Ipam6())
    pools.ipam.set_enis([ENI])
    pools.ipam6.set_enis([ENI])
    pools.ipam.confirm_release({ASKED})
    pools.ipam6.confirm_release({ASKED6})
    _, payload = pools.snapshot()
    assert released_in(payload) == Released(frozenset({ASKED}), frozenset({ASKED6}))
    assert released_in(pools.ipam.to_checkpoint()) == Released(frozenset({ASKED}))  # before IPv6
    assert released_in(None) == Released()


def test_durable_is_what_this_process_wrote_not_what_it_loaded(tmp_path: Path) -> None:
    # A loaded file may be one whose writer crashed before syncing its directory: the
    # agent's first pass writes (and syncs) its own before confirming anything.
    path = tmp_path / "checkpoint.json"
    Checkpoint(path).write({"released": ["10.0.16.7"]})
    restarted = Checkpoint(path)
    assert restarted.load() == {"released": ["10.0.16.7"]}
    assert restarted.durable() is None
    restarted.write({"released": []})
    assert restarted.durable() == {"released": []}
