"""The Redis ACL of docs/deploy.md, loaded by a real redis-server with the manifests'
redis.conf: no passwordless access, no shared agent user, and the credential issuer's
user kept to managing node users."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.fixtures.acl_redis import CLUSTER, USERS, AclRedis, acl_from_docs, acl_redis_server
from vpcnet.state.acl_users import NodeAclUsers
from vpcnet.state.keys import ClusterKeys


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[AclRedis]:
    with acl_redis_server(tmp_path) as server:
        yield server


def test_no_passwordless_access(acl_redis: AclRedis) -> None:
    with pytest.raises(redis.AuthenticationError):
        acl_redis.client(None, None).ping()
    with pytest.raises(redis.AuthenticationError):
        acl_redis.client("workers", USERS["W"][1]).ping()  # another user's password


def test_control_plane_users_can_use_the_broker(acl_redis: AclRedis) -> None:
    for var in ("R", "W", "B", "F"):
        c = acl_redis.as_component(var)
        c.lpush("ec2", "task")
        c.hset("unacked", "t", "x")
        c.publish("celeryev", "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        acl_redis.as_component("R").flushall()  # dangerous commands are off


def test_the_acl_file_has_no_user_for_nodes() -> None:
    """Nodes get per-node users from the issuer; a shared agent password on every node
    would let any node act on any other's keys (invariant 8)."""
    users = {line.split()[1] for line in acl_from_docs().splitlines() if line.startswith("user ")}
    assert users == {"default", *(u for u, _ in USERS.values())}


def test_the_issuer_user_manages_node_users_and_nothing_else(acl_redis: AclRedis) -> None:
    issuer = acl_redis.as_component("I")
    cred = NodeAclUsers(issuer, CLUSTER).issue("ip-10-0-0-1.ec2.internal")
    node = acl_redis.client(cred.username, cred.password)
    assert node.ping()
    keys = ClusterKeys(CLUSTER)
    denied = [
        lambda: issuer.lpush("ec2", "forged-task"),  # the broker
        lambda: issuer.hgetall(keys.node("ip-10-0-0-1.ec2.internal").node),  # node state
        lambda: issuer.set(keys.schema, "9"),
        lambda: issuer.publish(keys.agent_ready_channel, "x"),
        lambda: issuer.keys("*"),
        lambda: issuer.flushall(),
        lambda: issuer.execute_command("CONFIG", "SET", "aclfile", "/tmp/x"),
        lambda: issuer.execute_command("ACL", "SAVE"),
    ]
    for attempt in denied:
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
