"""The agent's Redis side (``RedisSync``, the real one, driven by a real IPAM) across a
Sentinel failover that loses acknowledged writes: the mirror and the subscription
resume on the new primary, and the full mirror rewrite restores what the failover lost.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fixtures.sentinel import SentinelGroup
from vpcnet.agent.ipam import AttachmentKey, Ipam
from vpcnet.agent.redis_sync import AgentReport, RedisSync
from vpcnet.domain import EniRecord
from vpcnet_sim.embedded.procs import wait_for

pytestmark = pytest.mark.timeout(120)

A = ipaddress.IPv4Address
ENI = EniRecord(
    "eni-1", "0a:00:00:00:00:01", 1, "s", ipaddress.IPv4Network("10.0.16.0/20"), A("10.0.16.4"),
    ips=tuple(A(f"10.0.16.{i}") for i in range(5, 15)),
)


@pytest.fixture
def agent_sync(sentinels: SentinelGroup, cluster_name: str) -> Iterator[tuple[RedisSync, Ipam]]:
    ipam = Ipam(cooldown_seconds=30)
    ipam.set_enis([ENI])
    s = RedisSync(sentinels.url, cluster_name, "node-a", ipam, wake=threading.Event())
    s.start()
    yield s, ipam
    s.stop()


def test_mirror_written_only_to_the_lost_primary_is_rewritten_on_the_new_one(
    sentinels: SentinelGroup, agent_sync: tuple[RedisSync, Ipam]
) -> None:
    s, ipam = agent_sync
    c = sentinels.client()
    first = ipam.allocate(AttachmentKey("c0", "eth0"), "default", "p0").ip
    wait_for(lambda: c.hexists(s.keys.assigned, str(first)), 10, "the first ADD mirrored")
    before = s.mirror_flushes

    # Pods start while the replica is cut off: the mirror writes are acknowledged by the
    # primary (the flush counter moves) and then lost with it. Nothing is written while
    # it is frozen, so no failed write tells the agent (which would rewrite everything on
    # its next success); only the primary's change does.
    lost: list[str] = []

    def during_cut() -> None:
        for i in range(1, 4):
            lost.append(str(ipam.allocate(AttachmentKey(f"c{i}", "eth0"), "default", f"p{i}").ip))

    threading.Timer(0.1, during_cut).start()
    failover = sentinels.lose_writes_in_failover(window=1.5, cluster_prefix=s.keys.assigned)
    assert len(lost) == 3 and s.mirror_flushes > before, "the lost writes were acknowledged"
    assert failover.marker_acked_replicas == 0 and not failover.marker_on_new_primary
    assert not failover.marker_on_old_primary and failover.old_primary_rejoined
    assert failover.keys_lost_or_stale == 1  # the assigned hash, as the new primary had it

    truth = {str(a.ip) for a in ipam.allocations()}
    assert truth == {str(first), *lost}
    # The agent's loop reports as it does every pass; that write reaches the new primary
    # (the client retries past the demoted one) and must bring the whole mirror back from
    # the IPAM, long before the periodic resync (none runs in this test).
    s.report(AgentReport(ready=True, generation=1, stats=ipam.stats(), version="t"))
    wait_for(lambda: {k.decode() for k in c.hkeys(s.keys.assigned)} == truth, 15,
             "the mirror rewritten on the new primary")

    # The mirror keeps following on the new primary, and the subscription resumed there.
    ipam.release(AttachmentKey("c1", "eth0"))
    wait_for(lambda: not c.hexists(s.keys.assigned, lost[0]), 10, "a DEL mirrored after failover")
    wait_for(lambda: c.pubsub_numsub(s.keys.changed_channel)[0][1] == 1, 15,
             "the agent subscribed on the new primary")
    s.wake.clear()
    c.publish(s.keys.changed_channel, "enis")
    assert s.wake.wait(5)
    assert c.hget(s.keys.agent, "ready") == b"1"
    c.close()


def test_reads_follow_the_failover_without_a_new_client(
    sentinels: SentinelGroup, agent_sync: tuple[RedisSync, Ipam]
) -> None:
    s, _ = agent_sync
    c = sentinels.client()
    c.hset(s.keys.node, mapping={"generation": 7, "instance_id": "i-1"})
    c.hset(s.keys.enis, ENI.eni_id, ENI.to_json())
    assert s.read_node().generation == 7
    old = sentinels.primary.port
    sentinels.lose_writes_in_failover()
    assert sentinels.primary.port != old
    deadline = time.monotonic() + 15
    while True:  # the first read may meet the failover's tail; the agent retries
        try:
            state = s.read_node()
            break
        except Exception:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert state.generation == 7 and state.enis == (ENI,)
    c.close()
