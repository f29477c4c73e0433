"""Node A's real agent Redis code (RedisSync, driven by a real IPAM) logged in with its own
credential from the issuer (HTTP on loopback) against a real redis-server holding the
deployed ACL: everything it does works, with no ACL denial, and its login follows
rotation and a Redis restart that loses every ACL user."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.fixtures.acl_redis import CLUSTER, AclRedis, acl_redis_server
from vpcnet.agent.ipam import AttachmentKey, Ipam
from vpcnet.agent.redis_sync import AgentReport, RedisSync
from vpcnet.credentials.client import fetch_node_credential
from vpcnet.credentials.issuer import AUDIENCE, CredentialIssuer
from vpcnet.credentials.policy import service_account_username
from vpcnet.credentials.provider import NodeCredentialProvider
from vpcnet.credentials.server import CredentialServer
from vpcnet.domain import EniRecord
from vpcnet.state.acl import NodeCredential
from vpcnet.state.acl_users import NodeAclUsers
from vpcnet_sim.embedded.procs import wait_for

pytestmark = pytest.mark.timeout(120)

IP = ipaddress.IPv4Address
NODE = "ip-10-0-16-4.ec2.internal"
AGENT_SA = service_account_username("vpcnet-system", "vpcnet-agent")
ENI = EniRecord(
    "eni-1", "0a:00:00:00:00:01", 1, "s", ipaddress.IPv4Network("10.0.16.0/20"), IP("10.0.16.4"),
    ips=tuple(IP(f"10.0.16.{i}") for i in range(5, 16)),
)


@dataclass(frozen=True)
class Identity:
    username: str
    pod_name: str | None
    node_name: str | None


def review(token: str, audiences: Sequence[str]) -> Identity:
    """The agent pod's projected token, as reviewed (the real TokenReview of a real pod's
    token, with the real issuer process: test_node_isolation_apiserver.py)."""
    assert token == "agent-token-a" and AUDIENCE in audiences
    return Identity(AGENT_SA, "vpcnet-agent-x7k2p", NODE)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Agent:
    redis: AclRedis
    sync: RedisSync
    ipam: Ipam
    wake: threading.Event
    credentials: NodeCredentialProvider
    clock: Clock


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    with acl_redis_server(tmp_path / "redis") as server:
        users = NodeAclUsers(server.as_component("I"), CLUSTER, ttl_seconds=60)
        http = CredentialServer(CredentialIssuer(review, users, agent_username=AGENT_SA))
        http.start()
        token = tmp_path / "token"
        token.write_text("agent-token-a\n")
        clock = Clock()

        def fetch(t: str) -> NodeCredential:
            return fetch_node_credential(http.url, t)

        provider = NodeCredentialProvider(NODE, str(token), fetch, clock=clock)
        ipam = Ipam(cooldown_seconds=30)
        ipam.set_enis([ENI])
        wake = threading.Event()
        sync = RedisSync(server.url, CLUSTER, NODE, ipam, wake=wake, credentials=provider)
        sync.start()
        try:
            yield Agent(server, sync, ipam, wake, provider, clock)
        finally:
            sync.stop()
            http.stop()


def denials(server: AclRedis) -> list[dict[str, object]]:
    """Commands, keys or channels Redis refused the node's user (failed logins are logged
    as "auth"; Redis 7.0 also logs its AOF replay of MULTI blocks, as user "default")."""
    return [e for e in server.admin().acl_log()
            if e.get("username") == f"vpcnet-node:{CLUSTER}:{NODE}" and e.get("reason") != "auth"]


def exercise(a: Agent, run: int = 0) -> None:
    """Everything the agent does in Redis, checked from the control plane's side."""
    admin = a.redis.admin()
    k = a.sync.keys
    admin.hset(k.node, mapping={"generation": 2, "instance_id": "i-1"})
    admin.hset(k.enis, "eni-1", ENI.to_json())
    admin.sadd(k.release_req, "10.0.16.7")
    state = a.sync.read_node()
    assert state.generation == 2 and state.enis == (ENI,)
    assert state.release_req == frozenset({IP("10.0.16.7")})

    wait_for(lambda: admin.pubsub_numsub(k.changed_channel)[0][1] == 1, 10, "subscribed")
    a.wake.clear()
    admin.publish(k.changed_channel, "enis")
    assert a.wake.wait(10)

    key1, key2 = AttachmentKey(f"c{run}a", "eth0"), AttachmentKey(f"c{run}b", "eth0")
    ip1 = a.ipam.allocate(key1, "default", "p1").ip
    ip2 = a.ipam.allocate(key2, "default", "p2").ip
    a.ipam.release(key1)
    confirmed = a.ipam.confirm_release({IP("10.0.16.7")})
    a.sync.confirm_released(confirmed)

    def mirrored() -> bool:
        assigned = {f.decode() for f in admin.hkeys(k.assigned)}
        cooling = {m.decode() for m in admin.zrange(k.cooldown, 0, -1)}
        return str(ip2) in assigned and str(ip1) not in assigned and str(ip1) in cooling

    wait_for(mirrored, 10, "the IPAM's changes mirrored")
    a.sync.request_full_mirror()
    flushes = a.sync.mirror_flushes
    wait_for(lambda: a.sync.mirror_flushes > flushes, 10, "a full mirror rewrite")
    assert mirrored()
    assert admin.smembers(k.release_ok) == {b"10.0.16.7"}

    ps = admin.pubsub(ignore_subscribe_messages=True)
    ps.subscribe(a.sync.cluster_keys.agent_ready_channel)
    a.sync.report(AgentReport(True, 2 + run, a.ipam.stats(), "v1"))  # published once per generation
    msg = None
    for _ in range(20):
        msg = msg or ps.get_message(timeout=0.25)
    ps.close()
    assert msg is not None and msg["data"] == NODE.encode()
    assert admin.hget(k.agent, "ready") == b"1"


def test_the_agent_does_everything_it_needs_with_its_own_credential(agent: Agent) -> None:
    exercise(agent)
    assert agent.sync.connected
    assert agent.credentials.fetches == 1  # one login for both connections
    assert denials(agent.redis) == []  # not one command of the agent was refused


def test_the_agent_logs_in_again_after_redis_lost_its_acl_users(agent: Agent) -> None:
    exercise(agent)
    agent.redis.restart()  # like a failover: ACL SETUSER users are neither saved nor replicated
    with pytest.raises(redis.AuthenticationError):  # the old password is gone with its user
        agent.redis.client(*agent.credentials.get_credentials()).ping()
    agent.sync.request_full_mirror()
    wait_for(lambda: agent.sync.connected and agent.credentials.fetches >= 2, 30,
             "the agent back with a new credential")
    exercise(agent, run=1)
    assert denials(agent.redis) == []


def test_the_agent_fetches_a_new_credential_after_half_its_ttl(agent: Agent) -> None:
    exercise(agent)
    first = agent.credentials.get_credentials()
    agent.clock.now += 31  # past half of the 60 s TTL
    second = agent.credentials.get_credentials()
    assert second[0] == first[0] and second[1] != first[1]
    assert agent.credentials.fetches == 2
    # Both work: the first is within TTL + grace, so a connection using it is not locked out.
    for login in (first, second):
        assert agent.redis.client(*login).ping()
    agent.redis.admin().client_kill_filter(user=first[0])  # the agent's connections drop
    exercise(agent, run=1)  # and come back with the new one
    assert denials(agent.redis) == []


def test_a_rotation_does_not_cut_the_agents_open_connections(agent: Agent) -> None:
    exercise(agent)
    admin = agent.redis.admin()
    user = f"vpcnet-node:{CLUSTER}:{NODE}"

    def connections() -> set[str]:
        return {c["id"] for c in admin.client_list() if c.get("user") == user}

    before = connections()
    assert len(before) >= 2  # the subscriber and the pool (mirror thread, loop)
    # Re-applying the user's rules (every issue does: resetchannels, selectors) must not
    # make Redis drop the subscriber as if its channel had been revoked.
    NodeAclUsers(agent.redis.as_component("I"), CLUSTER, ttl_seconds=60).issue(NODE)
    agent.wake.clear()
    admin.publish(agent.sync.keys.changed_channel, "enis")
    assert agent.wake.wait(10)
    assert connections() == before
