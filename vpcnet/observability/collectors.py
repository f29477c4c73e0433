"""Scrape-time collectors that read Redis: the Celery queues and the cluster's node pools.

Read on each scrape rather than pushed, so a value is never older than the scrape and
no process keeps a copy:

- ``QueueCollector`` (workers): messages waiting per Celery queue and messages delivered
  but not acknowledged yet, read from the broker (kombu's Redis transport layout).
- ``ClusterPoolCollector`` (the watcher, only while it holds the Lease, so a Prometheus
  sum over replicas counts each node once): per node, the pool the agent last reported
  (total / free / assigned / cooldown), the pod IPs the control plane wrote for it,
  agent readiness and heartbeat; nodes by phase.

A Redis outage makes a scrape report ``..._up 0`` instead of failing the whole scrape.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import redis
import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from vpcnet.domain import NodePhase
from vpcnet.state.keys import ClusterKeys
from vpcnet.state.records import AgentRecord

log = structlog.get_logger("vpcnet.metrics")

# kombu's Redis transport: a queue is a list; with message priorities in use, priorities
# 3/6/9 get lists of their own named ``<queue>\x06\x16<priority>``.
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
_UNACKED = "unacked"
POOL_STATES = ("total", "free", "assigned", "cooldown")


def queue_keys(queue: str) -> list[str]:
    return [queue, *(f"{queue}{_PRIORITY_SEP}{p}" for p in _PRIORITY_STEPS)]


class QueueCollector(Collector):
    """``vpcnet_queue_depth{queue}`` and ``vpcnet_queue_unacked`` from the broker."""

    def __init__(self, client: Callable[[], redis.Redis[bytes]], queues: Sequence[str]) -> None:
        self._client = client
        self._queues = tuple(queues)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families()

    def _families(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily("vpcnet_queue_depth", "Tasks waiting in a Celery queue", labels=["queue"]),
            GaugeMetricFamily(
                "vpcnet_queue_unacked",
                "Tasks delivered to a worker and not acknowledged yet (running, prefetched, "
                "or held by a dead worker until the visibility timeout)",
            ),
            GaugeMetricFamily("vpcnet_queue_broker_up", "1 if the broker answered this scrape"),
        ]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth, unacked, up = self._families()
        try:
            pipe = self._client().pipeline(transaction=False)
            for q in self._queues:
                for key in queue_keys(q):
                    pipe.llen(key)
            pipe.hlen(_UNACKED)
            values = [int(v) for v in pipe.execute()]
        except redis.RedisError as e:
            log.debug("queue depth unavailable", error=str(e))
            up.add_metric([], 0)
            yield up
            return
        per = len(_PRIORITY_STEPS) + 1
        for i, q in enumerate(self._queues):
            depth.add_metric([q], sum(values[i * per : (i + 1) * per]))
        unacked.add_metric([], values[-1])
        up.add_metric([], 1)
        yield from (depth, unacked, up)


def _text(v: bytes | str | None) -> str:
    if v is None:
        return ""
    return v.decode() if isinstance(v, bytes) else v


def _pod_ip_count(raw: bytes | str) -> int:
    """Pod IPs of one ENI record (secondary IPs + every address of its prefixes)."""
    try:
        doc: dict[str, Any] = json.loads(raw)
        prefixes = doc.get("prefixes", ())
        ips = len(doc.get("ips", ()))
        return ips + sum(int(2 ** (32 - int(str(p).split("/")[1]))) for p in prefixes)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return 0  # a malformed record: ``vpcnet audit`` reports it


class ClusterPoolCollector(Collector):
    """Per-node pools across the cluster, from Redis (emits nothing while ``active`` is false)."""

    def __init__(
        self,
        client: Callable[[], redis.Redis[bytes]],
        cluster: str,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self._client = client
        self._keys = ClusterKeys(cluster)
        self._active = active

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families()

    def _families(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "vpcnet_node_pool_ips",
                "Pod IPs of a node's pool as its agent last reported them, by state",
                labels=["node", "state"],
            ),
            GaugeMetricFamily(
                "vpcnet_node_capacity_ips",
                "Pod IPs on a node's ENIs as the control plane last wrote them to Redis",
                labels=["node"],
            ),
            GaugeMetricFamily("vpcnet_node_agent_ready", "1 if the node's agent reports ready", labels=["node"]),
            GaugeMetricFamily(
                "vpcnet_node_agent_heartbeat_timestamp_seconds",
                "Unix time of the agent's last report (a stale value: the agent is down)",
                labels=["node"],
            ),
            GaugeMetricFamily("vpcnet_nodes", "Nodes vpcnet knows, by phase", labels=["phase"]),
            GaugeMetricFamily("vpcnet_cluster_state_up", "1 if Redis answered this scrape"),
        ]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not self._active():
            return
        pools, capacity, ready, heartbeat, phases, up = self._families()
        try:
            client = self._client()
            names = sorted(_text(n) for n in client.smembers(self._keys.nodes))
            pipe = client.pipeline(transaction=False)
            for name in names:
                keys = self._keys.node(name)
                pipe.hgetall(keys.agent)
                pipe.hget(keys.node, "phase")
                pipe.hvals(keys.enis)
            raw = pipe.execute()
        except (redis.RedisError, ValueError) as e:
            log.debug("cluster state unavailable", error=str(e))
            up.add_metric([], 0)
            yield up
            return
        by_phase: Counter[str] = Counter({p.value: 0 for p in NodePhase})
        for i, name in enumerate(names):
            agent_raw = raw[3 * i]
            by_phase[_text(raw[3 * i + 1]) or NodePhase.PENDING.value] += 1
            capacity.add_metric([name], sum(_pod_ip_count(r) for r in raw[3 * i + 2]))
            if not agent_raw:
                continue  # no agent report yet
            agent = AgentRecord.from_redis(agent_raw)
            counts = {"free": agent.free, "assigned": agent.assigned, "cooldown": agent.cooldown}
            counts["total"] = sum(counts.values())
            for state in POOL_STATES:
                pools.add_metric([name, state], counts[state])
            ready.add_metric([name], 1 if agent.ready else 0)
            heartbeat.add_metric([name], agent.heartbeat)
        for phase, n in sorted(by_phase.items()):
            phases.add_metric([phase], n)
        up.add_metric([], 1)
        yield from (pools, capacity, ready, heartbeat, phases, up)


__all__ = ["POOL_STATES", "ClusterPoolCollector", "QueueCollector", "queue_keys"]
