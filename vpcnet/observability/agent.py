"""The node agent's metrics: its pool, readiness, Redis link and every CNI request.

Gauges are read from the running agent on each scrape (``AgentCollector``), so they
cost nothing between scrapes; CNI requests are counted and timed as they are answered
(``observe_cni_request``, the ``CniServer`` observer), a few microseconds per request.
Served on ``VPCNET_AGENT_METRICS_PORT`` (0: off) by ``start_agent_metrics``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from vpcnet.agent.ipam import PoolStats
from vpcnet.observability.collectors import POOL_STATES
from vpcnet.observability.metrics import CNI_LATENCY, CNI_REQUESTS, serve_metrics


class _Timing(Protocol):
    """What the CNI server reports per request (``vpcnet.agent.cniserver.timing.RequestTiming``)."""

    @property
    def command(self) -> str: ...

    @property
    def total(self) -> float: ...

    @property
    def code(self) -> int: ...


class _Pool(Protocol):
    def stats(self) -> PoolStats: ...


class _Pool6(Protocol):
    def allocations(self) -> Sized: ...


class _Link(Protocol):
    @property
    def connected(self) -> bool: ...


class _Programmed(Protocol):
    @property
    def generation(self) -> int: ...

    @property
    def enis(self) -> Sized: ...


class AgentLike(Protocol):
    """The parts of ``vpcnet.agent.main.Agent`` the collector reads."""

    @property
    def ready(self) -> bool: ...

    @property
    def version(self) -> str: ...

    @property
    def programmed(self) -> _Programmed | None: ...

    @property
    def ipam(self) -> _Pool: ...

    @property
    def ipam6(self) -> _Pool6: ...

    @property
    def sync(self) -> _Link: ...


def observe_cni_request(timing: _Timing) -> None:
    """Count and time one answered CNI request (code 0 = success)."""
    CNI_REQUESTS.labels(timing.command, str(timing.code)).inc()
    CNI_LATENCY.labels(timing.command).observe(timing.total)


class AgentCollector(Collector):
    def __init__(self, node: str, agent: AgentLike) -> None:
        self._node = node
        self._agent = agent

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families()

    def _families(self) -> list[GaugeMetricFamily]:
        n = ["node"]
        return [
            GaugeMetricFamily(
                "vpcnet_agent_pool_ips",
                "Pod IPs of this node's pool by state (total = free + assigned + cooldown)",
                labels=["node", "state"],
            ),
            GaugeMetricFamily("vpcnet_agent_ready", "1 once the node's ENIs are programmed", labels=n),
            GaugeMetricFamily(
                "vpcnet_agent_programmed_generation",
                "Generation of the node's ENI state (Redis) the agent last programmed",
                labels=n,
            ),
            GaugeMetricFamily("vpcnet_agent_enis", "ENIs programmed on the node", labels=n),
            GaugeMetricFamily(
                "vpcnet_agent_redis_up",
                "1 if the agent's last Redis operation succeeded (ADD/DEL work without it)",
                labels=n,
            ),
            GaugeMetricFamily("vpcnet_agent_info", "The agent's version", labels=["node", "version"]),
            GaugeMetricFamily(
                "vpcnet_agent_ipv6_assigned",
                "IPv6 pod addresses assigned on this node (from its /80s, which have no "
                "meaningful free count)",
                labels=n,
            ),
        ]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pools, ready, generation, enis, redis_up, info, assigned6 = self._families()
        a, node = self._agent, self._node
        stats = a.ipam.stats()
        for state in POOL_STATES:
            pools.add_metric([node, state], getattr(stats, state))
        programmed = a.programmed
        ready.add_metric([node], 1 if a.ready else 0)
        generation.add_metric([node], programmed.generation if programmed else 0)
        enis.add_metric([node], len(programmed.enis) if programmed else 0)
        redis_up.add_metric([node], 1 if a.sync.connected else 0)
        info.add_metric([node, a.version], 1)
        assigned6.add_metric([node], len(a.ipam6.allocations()))
        yield from (pools, ready, generation, enis, redis_up, info, assigned6)


def start_agent_metrics(node: str, agent: AgentLike, port: int, address: str = "0.0.0.0",
                        registry: CollectorRegistry = REGISTRY) -> int:
    """Register the agent's collector and serve ``/metrics``; returns the bound port."""
    registry.register(AgentCollector(node, agent))
    return serve_metrics(port, address, registry)


__all__ = ["AgentCollector", "AgentLike", "observe_cni_request", "start_agent_metrics"]
