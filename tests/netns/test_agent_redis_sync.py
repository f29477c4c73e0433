"""The agent's Redis follower and mirror against a real redis-server of its own
(stopped and restarted by the test), driven by a real IPAM."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.fixtures.netns import wait_for
from tests.fixtures.redis import RedisServer
from vpcnet.agent.ipam import AttachmentKey, Ipam
from vpcnet.agent.redis_sync import AgentReport, RedisSync
from vpcnet.domain import EniRecord
from vpcnet.errors import StateError

pytestmark = pytest.mark.timeout(60)

A = ipaddress.IPv4Address
ENI = EniRecord(
    "eni-1", "0a:00:00:00:00:01", 1, "s", ipaddress.IPv4Network("10.0.16.0/20"), A("10.0.16.4"),
    ips=(A("10.0.16.5"), A("10.0.16.6"), A("10.0.16.7")),
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path / "redis")
    s.start()
    yield s
    s.stop()


@pytest.fixture
def sync(server: RedisServer, cluster_name: str) -> Iterator[tuple[RedisSync, Ipam, threading.Event]]:
    ipam = Ipam(cooldown_seconds=30)
    ipam.set_enis([ENI])
    wake = threading.Event()
    s = RedisSync(server.url, cluster_name, "node-a", ipam, wake=wake)
    s.start()
    yield s, ipam, wake
    s.stop()


def client(server: RedisServer) -> redis.Redis[bytes]:
    return redis.Redis.from_url(server.url)


def test_reads_the_node_state_and_skips_a_malformed_record(
    server: RedisServer, sync: tuple[RedisSync, Ipam, threading.Event]
) -> None:
    s, _, _ = sync
    c = client(server)
    c.hset(s.keys.enis, mapping={"eni-1": ENI.to_json(), "eni-bad": "{not json"})
    c.hset(s.keys.node, mapping={"generation": 3, "instance_id": "i-1"})
    c.sadd(s.keys.release_req, "10.0.16.7", "garbage")
    state = s.read_node()
    assert state.generation == 3 and state.configured
    assert state.enis == (ENI,)
    assert state.release_req == frozenset({A("10.0.16.7")})
    assert state.node["instance_id"] == "i-1"


def test_changed_channel_wakes_the_agent(
    server: RedisServer, sync: tuple[RedisSync, Ipam, threading.Event]
) -> None:
    s, _, wake = sync
    c = client(server)
    wait_for(lambda: c.pubsub_numsub(s.keys.changed_channel)[0][1] == 1, 5, "subscribed")
    wake.clear()
    c.publish(s.keys.changed_channel, "enis")
    assert wake.wait(5)


def test_mirror_follows_the_ipam_and_reconciles_after_an_outage(
    server: RedisServer, sync: tuple[RedisSync, Ipam, threading.Event]
) -> None:
    s, ipam, _ = sync
    c = client(server)
    k1, k2 = AttachmentKey("c1", "eth0"), AttachmentKey("c2", "eth0")
    ip1 = ipam.allocate(k1, "default", "p1").ip
    wait_for(lambda: c.hexists(s.keys.assigned, str(ip1)), 5, "ADD mirrored")

    server.stop()
    ip2 = ipam.allocate(k2, "default", "p2").ip  # never blocks on Redis
    ipam.release(k1)
    with pytest.raises(StateError):
        s.read_node()
    server.start()

    def reconciled() -> bool:
        assigned = {k.decode() for k in c.hkeys(s.keys.assigned)}
        cooling = {m.decode() for m in c.zrange(s.keys.cooldown, 0, -1)}
        return assigned == {str(ip2)} and cooling == {str(ip1)}

    wait_for(reconciled, 15, "the mirror rewritten once Redis answers")


def test_agent_ready_is_published_once_per_generation(
    server: RedisServer, sync: tuple[RedisSync, Ipam, threading.Event]
) -> None:
    s, ipam, _ = sync
    c = client(server)
    ps = c.pubsub(ignore_subscribe_messages=True)
    ps.subscribe(s.cluster_keys.agent_ready_channel)
    s.report(AgentReport(False, 1, ipam.stats(), "v"))
    s.report(AgentReport(True, 1, ipam.stats(), "v"))
    s.report(AgentReport(True, 1, ipam.stats(), "v"))  # heartbeat: no new publish
    s.report(AgentReport(True, 2, ipam.stats(), "v"))
    got = []
    for _ in range(10):  # drain what was published (a bounded number of polls)
        msg = ps.get_message(timeout=0.2)
        if msg:
            got.append(msg["data"].decode())
    assert got == ["node-a", "node-a"]  # generations 1 and 2, not the heartbeat
    agent = {k.decode(): v.decode() for k, v in c.hgetall(s.keys.agent).items()}
    assert agent["ready"] == "1" and agent["generation"] == "2" and agent["free"] == "3"
    ps.close()


def test_release_ok_is_written(server: RedisServer, sync: tuple[RedisSync, Ipam, threading.Event]) -> None:
    s, ipam, _ = sync
    confirmed = ipam.confirm_release({A("10.0.16.7")})
    s.confirm_released(confirmed)
    assert client(server).smembers(s.keys.release_ok) == {b"10.0.16.7"}
