"""The chaos run's hostile agent against a real redis-server, without the rest of the run.

It logs in with node A's credential (issued by the issuer's own ACL user, as in the
chaos world) and attacks node B, the queues and the locks. With the per-node rules every
attempt is refused; once A's user is widened to the agent ACL of before node isolation
(``~vpcnet:{<cluster>/*`` with ``+@write``), the same agent reports its successes: the
chaos report's "0 successes" is a measurement, not a constant. A restart (ACL users are
not persisted) makes it log in again with a fresh credential.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vpcnet.state.acl import node_username
from vpcnet.state.keys import ClusterKeys
from vpcnet_sim.embedded.hostile import ISSUER_USER, HostileAgent, Victim, attempts_on, issuer_rules
from vpcnet_sim.embedded.procs import RedisServer

CLUSTER = "chaos"
A, B = "ns-0", "ns-1"
B_IPS = ("10.0.16.7", "10.0.16.8")


def _wait(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis", password=secrets.token_urlsafe(12))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _issuer(srv: RedisServer) -> tuple[str, Callable[[], object]]:
    import redis

    password = secrets.token_urlsafe(12)
    digest = hashlib.sha256(password.encode()).hexdigest()

    def install() -> None:
        admin = srv.client()
        try:
            admin.execute_command("ACL", "SETUSER", ISSUER_USER, *issuer_rules(CLUSTER, digest))
        finally:
            admin.close()

    install()
    url = f"redis://127.0.0.1:{srv.port}/0"
    return url, lambda: redis.Redis.from_url(url, username=ISSUER_USER, password=password)


def _agent(srv: RedisServer) -> HostileAgent:
    url, issuer = _issuer(srv)
    return HostileAgent(url, CLUSTER, A, "i-aaaa", issuer,  # type: ignore[arg-type]
                        lambda: [Victim(B, "i-bbbb", B_IPS)], pause=0.05)


def test_every_attempt_is_refused_with_the_node_rules(server: RedisServer) -> None:
    keys = ClusterKeys(CLUSTER)
    admin = server.client()
    admin.hset(keys.node(B).node, "instance_id", "i-bbbb")
    agent = _agent(server)
    agent.start()
    try:
        _wait(lambda: agent.snapshot()["own_reads_ok"] >= 3, "three rounds")
    finally:
        agent.stop_event.set()
        agent.join(10)
    snap = agent.snapshot()
    names = set(attempts_on(keys, "u", "i", Victim(B, "i-bbbb", B_IPS)))
    assert snap["successes"] == [] and snap["login_failures"] == 0
    assert snap["attempts"] == snap["refused"] > 0 and snap["unanswered"] == 0
    assert set(snap["by_attempt"]) == names  # every kind tried, every kind refused
    # Nothing of B's moved.
    assert admin.hget(keys.node(B).node, "instance_id") == b"i-bbbb"
    assert admin.smembers(keys.node(B).release_ok) == set()
    assert admin.smembers(keys.node(B).release_req) == set()
    admin.close()


def test_a_wide_agent_acl_is_reported_as_successes(server: RedisServer) -> None:
    agent = _agent(server)
    agent.start()
    admin = server.client()
    try:
        _wait(lambda: agent.snapshot()["refused"] > 0, "refusals")
        # The agent ACL before node isolation: any key of the cluster's nodes, any write.
        admin.execute_command("ACL", "SETUSER", node_username(CLUSTER, A),
                              f"~vpcnet:{{{CLUSTER}/*", "+@write")
        _wait(lambda: any(s.startswith("release-ok of B: in-use IPs")
                          for s in agent.snapshot()["successes"]), "B's release-ok reported")
    finally:
        agent.stop_event.set()
        agent.join(10)
    successes = agent.snapshot()["successes"]
    assert any(s.startswith("release-ok of B: in-use IPs") for s in successes), successes
    assert any(s.startswith("node of B: overwrite instance_id") for s in successes), successes
    admin.close()


def test_it_logs_in_again_after_a_restart_loses_its_user(server: RedisServer) -> None:
    agent = _agent(server)
    agent.start()
    try:
        _wait(lambda: agent.snapshot()["refused"] > 0, "refusals")
        server.stop()
        server.start()  # every ACL user is gone; the issuer's comes back (as the world does)
        admin = server.client()
        node_user = admin.execute_command("ACL", "GETUSER", node_username(CLUSTER, A))
        admin.close()
        assert node_user is None
        _, issuer = _issuer(server)
        agent.issuer = issuer  # type: ignore[assignment]
        _wait(lambda: agent.snapshot()["logins"] >= 2 and agent.snapshot()["own_reads_ok"] >= 2,
              "a second login")
    finally:
        agent.stop_event.set()
        agent.join(10)
    snap = agent.snapshot()
    assert snap["successes"] == [] and snap["refused"] > 0
