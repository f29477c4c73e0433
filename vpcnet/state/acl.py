"""Per-node Redis ACL users (invariant 8): what one node's agent may do, and nothing more.

Pure: no redis import. The rules are the arguments of ``ACL SETUSER`` (Redis 7.0 syntax),
built from the key layout of :mod:`vpcnet.state.keys` so they cannot drift from it.

A node's user may, and only on its own node's keys (``vpcnet:{<cluster>/<node>}:*``):

- read (``%R~``) ``node``, ``enis``, ``release-req`` - what the control plane tells it;
- write (``%W~``) ``assigned``, ``cooldown``, ``release-ok``, ``agent`` - what it reports.
  Write-only: the agent never reads its mirror back, so it gets no read on it either;
- subscribe to its own ``changed`` channel, and publish on the cluster's ``agent-ready``
  channel. Redis 7.0's channel permissions do not separate publish from subscribe, so each
  channel sits in its own selector with only the one command allowed on it;
- run exactly the commands :mod:`vpcnet.agent.redis_sync` sends: MULTI/EXEC pipelines of
  HGETALL, SMEMBERS, HSET, HDEL, ZADD, ZREM, SADD, DEL, plus PING.

So it cannot touch another node's keys, the cluster keys, the Celery queues or any lock,
cannot enumerate (KEYS/SCAN), run scripts, or reach CONFIG/ACL/FLUSHALL. AUTH and HELLO
are always allowed by Redis (they are how it logs in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vpcnet.state.keys import ClusterKeys, NodeKeys

USER_PREFIX = "vpcnet-node"

# Kubernetes node names are DNS-1123 subdomains; nothing else can reach an ACL pattern,
# so a name can never carry a glob character (``*?[]\``) that widens it.
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# The agent's commands (vpcnet/agent/redis_sync.py); a new one there needs adding here.
AGENT_COMMANDS = (
    "multi", "exec", "discard", "ping",
    "hgetall", "smembers",
    "hset", "hdel", "zadd", "zrem", "sadd", "del",
)


def check_node_name(node: str) -> str:
    if len(node) > 253 or not _NODE_NAME.fullmatch(node):
        raise ValueError(f"not a Kubernetes node name (DNS-1123 subdomain): {node!r}")
    return node


def check_cluster_name(cluster: str) -> str:
    if len(cluster) > 100 or not _CLUSTER_NAME.fullmatch(cluster):
        raise ValueError(f"cluster name not usable in an ACL pattern: {cluster!r}")
    return cluster


def node_username(cluster: str, node: str) -> str:
    """The ACL user of one node's agent, e.g. ``vpcnet-node:prod:ip-10-0-0-1.ec2.internal``."""
    return f"{USER_PREFIX}:{check_cluster_name(cluster)}:{check_node_name(node)}"


def node_readable_keys(keys: NodeKeys) -> tuple[str, ...]:
    return (keys.node, keys.enis, keys.release_req)


def node_writable_keys(keys: NodeKeys) -> tuple[str, ...]:
    # ``demand``: ADDs waiting for an IP; it only asks for a provisioning pass of this node.
    return (keys.assigned, keys.cooldown, keys.release_ok, keys.agent, keys.demand)


def node_rules(cluster: str, node: str) -> tuple[str, ...]:
    """``ACL SETUSER <user>`` arguments granting one node's agent its permissions.

    Passwords are not part of them (see :mod:`vpcnet.state.acl_users`): applying the
    rules again is idempotent, and resets whatever the user held before.
    """
    check_cluster_name(cluster)
    check_node_name(node)
    cluster_keys = ClusterKeys(cluster)
    keys = cluster_keys.node(node)
    rules = ["on", "resetkeys", "resetchannels", "clearselectors", "-@all"]
    rules += [f"+{c}" for c in AGENT_COMMANDS]
    rules += [f"%R~{k}" for k in node_readable_keys(keys)]
    rules += [f"%W~{k}" for k in node_writable_keys(keys)]
    # One selector per channel: subscribe only to its own, publish only on agent-ready.
    rules.append(f"(+subscribe +unsubscribe resetchannels &{keys.changed_channel})")
    rules.append(f"(+publish resetchannels &{cluster_keys.agent_ready_channel})")
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class NodeCredential:
    """One node agent's Redis login, as the issuer hands it out.

    ``ttl_seconds``: fetch a new one within this (the agent does at half of it); the
    password itself keeps working for a grace period after, so an agent that is
    reconnecting with it while a new one is issued is not locked out.
    """

    node: str
    username: str
    password: str = field(repr=False)
    ttl_seconds: float
