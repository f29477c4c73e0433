"""Gather one snapshot of the world for audit, status and inspect.

Reads EC2 through the same adapter (rate limiter, counters) the workers use, Redis through
the control-state adapter, and Kubernetes through ``KubeClient``; converts everything into
the pure views of ``vpcnet.ops.audit``. Read-only: it never changes anything it looks at.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vpcnet.control.context import ControlContext
from vpcnet.control.view import EniView, InstanceView, created_at
from vpcnet.domain import Assignment, InstanceLimits, IpFamily, IPv4, IPv6, Mode, PodIp
from vpcnet.ipsupply import cannot_grow
from vpcnet.kube.client import KubeClient
from vpcnet.kube.types import NodeObj, PodObj
from vpcnet.limits import bundled_limits, max_pods
from vpcnet.ops.audit import Ec2Eni, NodeView, PodView, Snapshot, Violation, audit
from vpcnet.plan import PoolUsage
from vpcnet.settings import Settings
from vpcnet.state.control import NodeState
from vpcnet.state.records import AgentRecord, NodeRecord
from vpcnet.wellknown import TAG_CLUSTER, TAG_NODE


@dataclass(frozen=True)
class World:
    """Everything read in one pass (raw, before the audit's views)."""

    settings: Settings
    redis_nodes: Mapping[str, NodeState]
    assigned: Mapping[str, Mapping[PodIp, Assignment]]  # both families, as the agent mirrors them
    usage: Mapping[str, PoolUsage]  # cooldown and release-req (``assigned`` is above)
    agents: Mapping[str, AgentRecord]  # nodes whose agent has reported
    kube_nodes: Mapping[str, NodeObj]
    pods: tuple[PodObj, ...]
    enis: tuple[EniView, ...]  # tagged for this cluster
    instances: Mapping[str, InstanceView]
    errors: tuple[Mapping[str, Any], ...]
    taken_at: float
    # The cluster's cached limits of the nodes' instance types (max pods per family).
    limits: Mapping[str, InstanceLimits] = field(default_factory=dict)


def _created_age(eni: EniView, now: float) -> float:
    """Seconds since the ENI's created-at tag. Undated counts as older than any grace
    period, as GC treats it (vpcnet dates every ENI it creates, in the create call)."""
    born = created_at(eni.tags)
    return math.inf if born is None else max(0.0, now - born)


def read_assigned(ctx: ControlContext, node: str) -> dict[PodIp, Assignment]:
    """The agent's ``assigned`` hash: ip string (either family) -> Assignment JSON."""
    raw = ctx.state.redis.hgetall(ctx.state.node_keys(node).assigned)
    out: dict[PodIp, Assignment] = {}
    for ip, value in raw.items():
        a = Assignment.from_json(value)
        out[ipaddress.ip_address(ip.decode() if isinstance(ip, bytes) else ip)] = a
    return out


def ipv4_assigned(assigned: Mapping[PodIp, Assignment]) -> dict[IPv4, Assignment]:
    return {ip: a for ip, a in assigned.items() if isinstance(ip, IPv4)}


def ipv6_assigned(assigned: Mapping[PodIp, Assignment]) -> dict[IPv6, Assignment]:
    return {ip: a for ip, a in assigned.items() if isinstance(ip, IPv6)}


def collect(settings: Settings) -> World:
    kube = KubeClient.from_settings(settings, component="vpcnet-cli")
    ctx = ControlContext.from_settings(settings, kube=kube)
    try:
        names = set(ctx.state.list_nodes())
        kube_nodes = {n.name: n for n in kube.list_nodes()[0]}
        names |= {n for n, obj in kube_nodes.items() if obj.provider_id.startswith("aws://")}
        redis_nodes: dict[str, NodeState] = {}
        for name in sorted(names):
            state = ctx.state.read_node(name)
            if state is not None:
                redis_nodes[name] = state
        assigned = {name: read_assigned(ctx, name) for name in redis_nodes}
        usage = {
            name: ctx.state.read_usage(name, settings.ip_cooldown_seconds)
            for name in redis_nodes
        }
        agents = {
            name: rec for name in redis_nodes if (rec := ctx.state.agent(name)) is not None
        }
        enis = tuple(ctx.ec2.describe_enis({f"tag:{TAG_CLUSTER}": [settings.cluster_name]}))
        instance_ids = sorted(
            {s.instance_id for s in redis_nodes.values() if s.instance_id}
            | {e.instance_id for e in enis if e.instance_id}
        )
        instances = ctx.ec2.describe_instances(instance_ids) if instance_ids else {}
        return World(
            settings=settings,
            redis_nodes=redis_nodes,
            assigned=assigned,
            usage=usage,
            agents=agents,
            kube_nodes=kube_nodes,
            pods=tuple(kube.list_pods()),
            enis=enis,
            instances=instances,
            errors=tuple(ctx.state.errors(20)),
            taken_at=time.time(),
            limits={t: lim for t in sorted({s.record.instance_type for s in redis_nodes.values()})
                    if t and (lim := ctx.state.cached_limits(t)) is not None},
        )
    finally:
        kube.close()


def to_snapshot(world: World) -> Snapshot:
    now = world.taken_at
    enis = tuple(
        Ec2Eni(
            eni_id=e.eni_id,
            status=e.status,
            node_tag=e.tags.get(TAG_NODE, ""),
            instance_id=e.instance_id,
            device_index=e.device_index,
            ips=frozenset(e.ips),
            prefixes=frozenset(e.prefixes),
            age_seconds=_created_age(e, now),
            ipv6_prefixes=frozenset(e.ipv6_prefixes),
        )
        for e in world.enis
    )
    nodes = []
    for name, state in world.redis_nodes.items():
        inst = world.instances.get(state.instance_id)
        kube_node = world.kube_nodes.get(name)
        primary = inst.primary_eni() if inst else None
        usage = world.usage.get(name, PoolUsage())
        assigned = world.assigned.get(name, {})
        nodes.append(
            NodeView(
                name=name,
                instance_id=state.instance_id,
                instance_alive=bool(inst and inst.alive),
                in_kubernetes=kube_node is not None,
                phase=_phase(state.record),
                taints=frozenset(t.key for t in kube_node.taints) if kube_node else frozenset(),
                redis_enis=state.enis,
                assigned=ipv4_assigned(assigned),
                agent_ready=name in world.agents and world.agents[name].ready,
                primary_ip=inst.primary_ip if inst else None,
                primary_eni_ips=frozenset(primary.ips) if primary else frozenset(),
                cooling=usage.cooling,
                release_requested=usage.release_requested,
                why_no_growth=cannot_grow(state.record),
                ip_family=IpFamily.parse(state.record.ip_family),
                assigned6=ipv6_assigned(assigned),
                release_requested6=usage.release_requested6,
                primary_eni_id=primary.eni_id if primary else "",
                primary_eni_ipv6_prefixes=frozenset(primary.ipv6_prefixes) if primary else frozenset(),
            )
        )
    pods = tuple(
        PodView(p.namespace, p.name, p.node_name, p.pod_ip, p.pod_ip6)
        for p in world.pods
        if not p.host_network and p.node_name in world.redis_nodes
    )
    return Snapshot(
        cluster=world.settings.cluster_name,
        enis=enis,
        nodes=tuple(nodes),
        pods=pods,
        gc_grace_seconds=world.settings.eni_gc_grace_seconds,
    )


def _phase(record: NodeRecord) -> str:
    return record.phase.value if record.phase else ""


def run_audit(settings: Settings) -> list[Violation]:
    return audit(to_snapshot(collect(settings)))


def node_view(world: World, name: str) -> dict[str, Any]:
    """One node as status/inspect/demo show it: Redis, EC2, agent and pods side by side."""
    state = world.redis_nodes.get(name)
    record = state.record if state else None
    both = world.assigned.get(name, {})
    assigned = ipv4_assigned(both)
    assigned6 = ipv6_assigned(both)
    pods_by_ip = {str(ip): f"{p.namespace}/{p.name}" for p in world.pods for ip in p.pod_ips}
    inst = world.instances.get(state.instance_id) if state else None
    ec2_by_id = {e.eni_id: e for e in inst.enis} if inst else {}
    kube_node = world.kube_nodes.get(name)
    agent = world.agents.get(name)
    enis = []
    for rec in state.enis if state else ():
        ec2 = ec2_by_id.get(rec.eni_id)
        pod_ips = rec.pod_ips()
        enis.append(
            {
                "eni_id": rec.eni_id,
                "device_index": rec.device_index,
                "primary": rec.is_primary,
                "subnet_id": rec.subnet_id,
                "subnet_cidr": str(rec.subnet_cidr),
                "ips": [str(i) for i in rec.ips],
                "prefixes": [str(p) for p in rec.prefixes],
                "ipv6_prefixes": [str(p) for p in rec.ipv6_prefixes],
                "subnet_ipv6_cidr": str(rec.subnet_ipv6_cidr or ""),
                "ipv6_assigned": sum(1 for ip in assigned6 if any(ip in p for p in rec.ipv6_prefixes)),
                "ec2_status": ec2.status if ec2 else "missing",
                "ec2_ips": len(ec2.ips) + 16 * len(ec2.prefixes) if ec2 else 0,
                "assigned": sum(1 for ip in pod_ips if ip in assigned),
                "pods": [
                    pods_by_ip.get(str(ip), f"{assigned[ip].pod_namespace}/{assigned[ip].pod_name}")
                    for ip in pod_ips
                    if ip in assigned
                ],
            }
        )
    total = sum(len(r.pod_ips()) for r in (state.enis if state else ()))
    return {
        "name": name,
        "instance_id": state.instance_id if state else "",
        "instance_type": record.instance_type if record else "",
        "phase": _phase(record) if record else "unknown",
        "error": record.error if record else "",
        "mode": record.mode if record else "",
        "ip_family": IpFamily.parse(record.ip_family).value if record else "",
        "max_pods": _max_pods(world, record),
        "ipv6_prefixes": [str(p) for r in (state.enis if state else ()) for p in r.ipv6_prefixes],
        "ipv6_assigned": len(assigned6),
        "taints": sorted(t.key for t in kube_node.taints) if kube_node else [],
        "agent_ready": agent is not None and agent.ready,
        # the agent's own count (its report), next to the mirror's ``ipv6_assigned``
        "agent_assigned6": agent.assigned6 if agent is not None else 0,
        "agent": dataclasses.asdict(agent) if agent is not None else {},
        "ips_total": total,
        "ips_assigned": len(assigned),
        "ips_free": agent.free if agent is not None else max(total - len(assigned), 0),
        "ips_cooldown": agent.cooldown if agent is not None else 0,
        "enis": enis,
    }


def _max_pods(world: World, record: NodeRecord | None) -> int | None:
    """The node's pod capacity in its mode and family (``vpcnet.limits.max_pods``), from
    the cached limits, else the bundled table; the IPv6 cap uses their vCPU count
    (``InstanceLimits.vcpus``). None when the type or mode is unknown."""
    if record is None or not record.mode:
        return None
    limits = world.limits.get(record.instance_type) or bundled_limits(record.instance_type)
    if limits is None:
        return None
    return max_pods(limits, Mode(record.mode), IpFamily.parse(record.ip_family))


def collect_nodes_view(settings: Settings) -> list[dict[str, Any]]:
    world = collect(settings)
    return [node_view(world, name) for name in world.redis_nodes]
