"""Invariant 8 against a real redis-server with the deployed ACL: logged in as node A (its
own user, created by the issuer's Redis user), every key family of node B, every cluster
key, the Celery queues, the locks and the dangerous commands are refused with NOPERM."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.fixtures.acl_redis import CLUSTER, AclRedis, acl_redis_server
from vpcnet.state.acl_users import NodeAclUsers
from vpcnet.state.keys import ClusterKeys, NodeKeys

A_NODE = "ip-10-0-0-1.ec2.internal"
B_NODE = "ip-10-0-0-2.ec2.internal"
CK = ClusterKeys(CLUSTER)
A, B = CK.node(A_NODE), CK.node(B_NODE)
Attempt = Callable[["redis.Redis[bytes]"], object]


def node_key_attempts(k: NodeKeys, who: str) -> dict[str, Attempt]:
    """Read and write every key family of one node."""
    return {
        f"{who} node: read": lambda r: r.hgetall(k.node),
        f"{who} node: overwrite instance_id": lambda r: r.hset(k.node, "instance_id", "i-evil"),
        f"{who} enis: read": lambda r: r.hgetall(k.enis),
        f"{who} enis: write": lambda r: r.hset(k.enis, "eni-evil", "{}"),
        f"{who} assigned: read": lambda r: r.hgetall(k.assigned),
        f"{who} assigned: write": lambda r: r.hset(k.assigned, "10.0.0.9", "{}"),
        f"{who} assigned: delete": lambda r: r.delete(k.assigned),
        f"{who} cooldown: read": lambda r: r.zrange(k.cooldown, 0, -1),
        f"{who} cooldown: write": lambda r: r.zadd(k.cooldown, {"10.0.0.9": 1}),
        f"{who} release-req: read": lambda r: r.smembers(k.release_req),
        f"{who} release-req: add in-use IP": lambda r: r.sadd(k.release_req, "10.0.0.9"),
        f"{who} release-ok: read": lambda r: r.smembers(k.release_ok),
        f"{who} release-ok: confirm in-use IP": lambda r: r.sadd(k.release_ok, "10.0.0.9"),
        f"{who} agent: read": lambda r: r.hgetall(k.agent),
        f"{who} agent: fake ready": lambda r: r.hset(k.agent, "ready", 1),
        f"{who} demand: read": lambda r: r.hgetall(k.demand),
        f"{who} demand: ask for IPs": lambda r: r.hset(k.demand, "waiting", 50),
        f"{who} lock: read": lambda r: r.get(k.lock),
        f"{who} lock: take": lambda r: r.set(k.lock, "evil", px=60_000),
        f"{who} lock: delete": lambda r: r.delete(k.lock),
        f"{who} ec2-calls: read": lambda r: r.hgetall(k.ec2_calls),
        f"{who} ec2-calls: write": lambda r: r.hincrby(k.ec2_calls, "RunInstances", 1),
    }


def own_forbidden_attempts(k: NodeKeys) -> dict[str, Attempt]:
    """What node A may not do even to its own keys: only the control plane writes them."""
    every = node_key_attempts(k, "own")
    allowed = {"own node: read", "own enis: read", "own release-req: read",
               "own assigned: write", "own assigned: delete", "own cooldown: write",
               "own release-ok: confirm in-use IP", "own agent: fake ready",
               "own demand: ask for IPs"}
    return {name: f for name, f in every.items() if name not in allowed}


def cluster_key_attempts() -> dict[str, Attempt]:
    keys = {
        "schema": CK.schema, "nodes": CK.nodes, "errors": CK.errors,
        "limits": CK.limits("m5.large"), "ratelimit": CK.ratelimit("mutating"),
        "ec2-stats": CK.ec2_stats, "beat-lock": CK.beat_lock, "fill": CK.fill("limits"),
        "subnet": CK.subnet("subnet-1"), "dedup": CK.dedup_action(A_NODE, "provision"),
        "credentials": CK.credentials, "own credentials": CK.node_credentials(A_NODE),
    }
    out: dict[str, Attempt] = {}
    for name, key in keys.items():
        out[f"cluster {name}: read"] = lambda r, key=key: r.type(key) and r.dump(key)
        out[f"cluster {name}: get"] = lambda r, key=key: r.get(key)
        out[f"cluster {name}: hgetall"] = lambda r, key=key: r.hgetall(key)
        out[f"cluster {name}: write"] = lambda r, key=key: r.set(key, "x")
        out[f"cluster {name}: delete"] = lambda r, key=key: r.delete(key)
    out["cluster beat-lock: take"] = lambda r: r.set(CK.beat_lock, "evil", nx=True, px=60_000)
    out["cluster nodes: add a node"] = lambda r: r.sadd(CK.nodes, "ghost")
    return out


def broker_attempts() -> dict[str, Attempt]:
    """Celery's Redis transport: queues are lists, unacked a hash + zset, bindings sets."""
    return {
        "queue ec2: enqueue": lambda r: r.lpush("ec2", "forged-task"),
        "queue ec2: read": lambda r: r.lrange("ec2", 0, -1),
        "queue ec2: steal": lambda r: r.rpop("ec2"),
        "queue vpcnet: enqueue": lambda r: r.lpush("vpcnet", "forged-task"),
        "queue celery: enqueue": lambda r: r.lpush("celery", "forged-task"),
        "unacked: read": lambda r: r.hgetall("unacked"),
        "unacked: write": lambda r: r.hset("unacked", "t", "x"),
        "unacked_index: write": lambda r: r.zadd("unacked_index", {"t": 1}),
        "unacked_mutex: take": lambda r: r.set("unacked_mutex", "x"),
        "_kombu.binding.ec2: read": lambda r: r.smembers("_kombu.binding.ec2"),
        "_kombu.binding.ec2: write": lambda r: r.sadd("_kombu.binding.ec2", "x"),
        "result backend: read": lambda r: r.get("celery-task-meta-1"),
        "events: publish": lambda r: r.publish("celeryev", "x"),
    }


def command_attempts() -> dict[str, Attempt]:
    ex = "execute_command"
    def cmd(*args: object) -> Attempt:
        return lambda r: getattr(r, ex)(*args)
    return {
        "KEYS": cmd("KEYS", "*"), "SCAN": cmd("SCAN", "0"), "RANDOMKEY": cmd("RANDOMKEY"),
        "DBSIZE": cmd("DBSIZE"), "INFO": cmd("INFO"),
        "FLUSHALL": cmd("FLUSHALL"), "FLUSHDB": cmd("FLUSHDB"),
        "CONFIG GET": cmd("CONFIG", "GET", "*"), "CONFIG SET": cmd("CONFIG", "SET", "appendonly", "no"),
        "ACL LIST": cmd("ACL", "LIST"), "ACL GETUSER": cmd("ACL", "GETUSER", "workers"),
        "ACL SETUSER": cmd("ACL", "SETUSER", "evil", "on", ">x", "~*", "+@all"),
        "ACL DELUSER": cmd("ACL", "DELUSER", "workers"), "ACL LOG": cmd("ACL", "LOG"),
        "EVAL": cmd("EVAL", "return 1", "0"),
        "EVAL on B": cmd("EVAL", "return redis.call('sadd', KEYS[1], ARGV[1])", "1", B.release_ok, "x"),
        "EVALSHA": cmd("EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"),
        "SCRIPT LOAD": cmd("SCRIPT", "LOAD", "return 1"), "FCALL": cmd("FCALL", "f", "0"),
        "FUNCTION LOAD": cmd("FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('f', function() return 1 end)"),
        "MONITOR": cmd("MONITOR"), "CLIENT LIST": cmd("CLIENT", "LIST"),
        "CLIENT KILL": cmd("CLIENT", "KILL", "USER", "workers"), "SHUTDOWN": cmd("SHUTDOWN", "NOSAVE"),
        "SAVE": cmd("SAVE"), "BGREWRITEAOF": cmd("BGREWRITEAOF"), "REPLICAOF": cmd("REPLICAOF", "127.0.0.1", "1"),
        "SELECT 1": cmd("SELECT", "1"), "SWAPDB": cmd("SWAPDB", "0", "1"),
        "MIGRATE": cmd("MIGRATE", "127.0.0.1", "1", A.assigned, "0", "100"),
        "RENAME own into B": cmd("RENAME", A.assigned, B.assigned),
        "COPY own into B": cmd("COPY", A.assigned, B.assigned),
        "SORT STORE into B": cmd("SORT", A.release_req, "STORE", B.release_ok),
        "SUNIONSTORE into B": cmd("SUNIONSTORE", B.release_ok, A.release_req),
        "DUMP own": cmd("DUMP", A.assigned), "OBJECT": cmd("OBJECT", "ENCODING", A.assigned),
        "WAIT": cmd("WAIT", "0", "1"), "PUBSUB CHANNELS": cmd("PUBSUB", "CHANNELS"),
        "WATCH B": cmd("WATCH", B.node),
    }


def channel_attempts() -> dict[str, Attempt]:
    def subscribe(channel: str) -> Attempt:
        def go(r: redis.Redis[bytes]) -> object:
            ps = r.pubsub()
            try:
                ps.subscribe(channel)
                return ps.get_message(timeout=2)
            finally:
                ps.close()
        return go

    def psubscribe(pattern: str) -> Attempt:
        def go(r: redis.Redis[bytes]) -> object:
            ps = r.pubsub()
            try:
                ps.psubscribe(pattern)
                return ps.get_message(timeout=2)
            finally:
                ps.close()
        return go

    return {
        "publish on B's changed": lambda r: r.publish(B.changed_channel, "enis"),
        "subscribe to B's changed": subscribe(B.changed_channel),
        "psubscribe to every node's changed": psubscribe(f"vpcnet:{{{CLUSTER}/*"),
        "subscribe to agent-ready (others' readiness)": subscribe(CK.agent_ready_channel),
        "publish on own changed": lambda r: r.publish(A.changed_channel, "enis"),
        "publish on celery events": lambda r: r.publish("celeryev", "x"),
    }


def in_transaction(k: NodeKeys) -> dict[str, Attempt]:
    """The agent's own pipelines cannot carry a forbidden command past the check."""
    def go(r: redis.Redis[bytes]) -> object:
        with r.pipeline(transaction=True) as pipe:
            pipe.hset(A.agent, "ready", 1)
            pipe.sadd(k.release_ok, "10.0.0.9")
            return pipe.execute()
    return {"MULTI with B's release-ok": go}


def every_hostile_attempt() -> dict[str, Attempt]:
    return {
        **node_key_attempts(B, "B"), **own_forbidden_attempts(A), **cluster_key_attempts(),
        **broker_attempts(), **command_attempts(), **channel_attempts(), **in_transaction(B),
    }


def not_denied(client: redis.Redis[bytes], attempts: dict[str, Attempt]) -> dict[str, str]:
    """Each attempt that Redis did not refuse with NOPERM, and what happened instead."""
    out = {}
    for name, attempt in attempts.items():
        try:
            result = attempt(client)
        except redis.exceptions.NoPermissionError:
            continue
        except redis.RedisError as e:
            out[name] = f"{type(e).__name__}: {e}"
        else:
            out[name] = f"allowed: {result!r}"[:120]
    return out


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[AclRedis]:
    with acl_redis_server(tmp_path) as server:
        yield server


def seed(admin: redis.Redis[bytes]) -> None:
    """Both nodes' state and the cluster's, as the control plane writes it."""
    for k in (A, B):
        admin.hset(k.node, mapping={"instance_id": "i-1", "generation": 1})
        admin.hset(k.enis, "eni-1", "{}")
        admin.hset(k.assigned, "10.0.0.9", "{}")
        admin.zadd(k.cooldown, {"10.0.0.8": 1})
        admin.sadd(k.release_req, "10.0.0.7")
        admin.sadd(k.release_ok, "10.0.0.7")
        admin.hset(k.agent, "ready", 1)
        admin.set(k.lock, "worker-token")
        admin.hset(k.ec2_calls, "AssignPrivateIpAddresses", 1)
    admin.set(CK.schema, "1")
    admin.sadd(CK.nodes, A_NODE, B_NODE)
    admin.set(CK.beat_lock, "beat-token")
    admin.lpush("ec2", "real-task")
    admin.hset("unacked", "t", "x")
    admin.sadd("_kombu.binding.ec2", "ec2")


def test_node_a_is_denied_everything_of_node_b_the_cluster_and_the_broker(
    acl_redis: AclRedis,
) -> None:
    admin = acl_redis.as_component("R")
    seed(admin)
    cred = NodeAclUsers(acl_redis.as_component("I"), CLUSTER).issue(A_NODE)
    node_a = acl_redis.client(cred.username, cred.password)
    assert node_a.ping()

    attempts = every_hostile_attempt()
    assert len(attempts) > 120  # the lists above, not an empty loop
    assert not_denied(node_a, attempts) == {}
    # ... and nothing changed: the seeded state is intact.
    assert admin.hget(B.node, "instance_id") == b"i-1"
    assert admin.smembers(B.release_ok) == {b"10.0.0.7"}
    assert admin.get(B.lock) == b"worker-token"
    assert admin.lrange("ec2", 0, -1) == [b"real-task"]


def test_node_a_can_do_what_its_agent_does_on_its_own_keys(acl_redis: AclRedis) -> None:
    seed(acl_redis.as_component("R"))
    cred = NodeAclUsers(acl_redis.as_component("I"), CLUSTER).issue(A_NODE)
    node_a = acl_redis.client(cred.username, cred.password)
    with node_a.pipeline(transaction=True) as pipe:
        pipe.hgetall(A.node)
        pipe.hgetall(A.enis)
        pipe.smembers(A.release_req)
        node, enis, req = pipe.execute()
    assert node[b"instance_id"] == b"i-1" and enis == {b"eni-1": b"{}"} and req == {b"10.0.0.7"}
    with node_a.pipeline(transaction=True) as pipe:
        pipe.delete(A.assigned, A.cooldown)
        pipe.hset(A.assigned, "10.0.0.10", "{}")
        pipe.hdel(A.assigned, "10.0.0.10")
        pipe.zadd(A.cooldown, {"10.0.0.10": 2})
        pipe.zrem(A.cooldown, "10.0.0.10")
        pipe.sadd(A.release_ok, "10.0.0.7")
        pipe.hset(A.agent, mapping={"ready": 1, "generation": 1})
        pipe.publish(CK.agent_ready_channel, A_NODE)
        pipe.execute()
    ps = node_a.pubsub()
    ps.subscribe(A.changed_channel)
    assert ps.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]
    ps.close()


def test_another_nodes_credential_does_not_log_in_as_node_a(acl_redis: AclRedis) -> None:
    users = NodeAclUsers(acl_redis.as_component("I"), CLUSTER)
    cred_b = users.issue(B_NODE)
    users.issue(A_NODE)
    with pytest.raises(redis.AuthenticationError):
        acl_redis.client(users.username(A_NODE), cred_b.password).ping()
