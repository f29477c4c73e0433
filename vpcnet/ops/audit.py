"""Audit: check DESIGN.md's invariants on one consistent-enough snapshot of the world.

Pure: the snapshot is gathered by ``vpcnet.ops.collect`` from EC2, Redis, Kubernetes and
the agents' reports; this module only compares. Every violation names the invariant
it breaks and the object, so an operator (or a chaos test) can act on it.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from vpcnet.domain import (
    Assignment,
    EniRecord,
    IpFamily,
    IPv4,
    IPv4Net,
    IPv6,
    IPv6Net,
    NodePhase,
    PodIp,
)
from vpcnet.ipsupply import no_ip_can_be_had
from vpcnet.plan import PoolUsage
from vpcnet.wellknown import NO_FREE_IPS_TAINT, NOT_READY_TAINT


@dataclass(frozen=True, slots=True)
class Ec2Eni:
    """An ENI as EC2 describes it (only those tagged for this cluster are collected)."""

    eni_id: str
    status: str  # available | in-use | attaching | detaching
    node_tag: str  # the vpcnet.io/node tag
    instance_id: str | None = None  # attached to
    device_index: int | None = None
    ips: frozenset[IPv4] = frozenset()  # secondary private IPs
    prefixes: frozenset[IPv4Net] = frozenset()
    age_seconds: float = 0.0
    ipv6_prefixes: frozenset[IPv6Net] = frozenset()  # delegated /80s

    def pod_ips(self) -> frozenset[IPv4]:
        out = set(self.ips)
        for p in self.prefixes:
            out.update(p)
        return frozenset(out)


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    instance_id: str
    instance_alive: bool  # EC2 says running
    in_kubernetes: bool
    phase: str
    taints: frozenset[str]
    redis_enis: tuple[EniRecord, ...]
    assigned: Mapping[IPv4, Assignment]  # the agent's mirror in Redis
    agent_ready: bool
    primary_ip: IPv4 | None = None
    # IPs of the instance's primary ENI that vpcnet assigned (secondaries on eth0)
    primary_eni_ips: frozenset[IPv4] = frozenset()
    # The rest of the agent's pool report (Redis cooldown, release-req) and why the pool
    # cannot grow ("" when it can): what the no-free-IPs taint's rule reads besides
    # ``assigned`` (vpcnet.ipsupply)
    cooling: frozenset[IPv4] = frozenset()
    release_requested: frozenset[IPv4] = frozenset()
    why_no_growth: str = ""
    # IPv6 (vpcnet.ops.audit_ipv6): the node's family as the control plane wrote it, the
    # agent's IPv6 assignments (the same ``assigned`` hash), the /80s in release-req,
    # and the instance's primary ENI (untagged, so not among the snapshot's ENIs).
    ip_family: IpFamily = IpFamily.IPV4
    assigned6: Mapping[IPv6, Assignment] = field(default_factory=dict)
    release_requested6: frozenset[IPv6Net] = frozenset()
    primary_eni_id: str = ""
    primary_eni_ipv6_prefixes: frozenset[IPv6Net] = frozenset()

    def usage(self) -> PoolUsage:
        return PoolUsage(assigned=frozenset(self.assigned), cooling=self.cooling,
                         release_requested=self.release_requested,
                         assigned6=frozenset(self.assigned6),
                         release_requested6=self.release_requested6)


@dataclass(frozen=True, slots=True)
class PodView:
    namespace: str
    name: str
    node: str
    ip: IPv4 | None
    ip6: IPv6 | None = None  # a dual or ipv6 pod's IPv6 (Kubernetes' status.podIPs)

    def ips(self) -> tuple[PodIp, ...]:
        return tuple(ip for ip in (self.ip, self.ip6) if ip is not None)


@dataclass(frozen=True, slots=True)
class Snapshot:
    cluster: str
    enis: tuple[Ec2Eni, ...]
    nodes: tuple[NodeView, ...]
    pods: tuple[PodView, ...] = ()
    gc_grace_seconds: float = 600.0
    # ENIs the control plane is creating right now may be briefly unattached
    live_instances: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, order=True)
class Violation:
    invariant: int  # the number in DESIGN.md
    kind: str
    subject: str
    detail: str = field(compare=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "invariant": self.invariant,
            "kind": self.kind,
            "subject": self.subject,
            "detail": self.detail,
        }


def _ip_owners(snap: Snapshot) -> dict[IPv4, list[str]]:
    """Which node's EC2 ENIs hold each IP (an IP on two ENIs is itself a violation)."""
    owners: dict[IPv4, list[str]] = defaultdict(list)
    by_instance = {n.instance_id: n.name for n in snap.nodes}
    for eni in snap.enis:
        if eni.instance_id is None:
            continue
        node = by_instance.get(eni.instance_id, eni.node_tag)
        for ip in eni.pod_ips():
            owners[ip].append(node)
    for n in snap.nodes:
        for ip in n.primary_eni_ips:
            owners[ip].append(n.name)
    return owners


def check_ip_uniqueness(snap: Snapshot) -> list[Violation]:
    """Invariant 1: one pod per IP cluster-wide, on the node whose ENI holds it."""
    out: list[Violation] = []
    holders: dict[IPv4, list[str]] = defaultdict(list)
    for n in snap.nodes:
        for ip, a in n.assigned.items():
            holders[ip].append(f"{n.name}:{a.container_id[:12]}/{a.ifname}")
    for ip, who in sorted(holders.items()):
        if len(who) > 1:
            out.append(Violation(1, "ip-assigned-twice", str(ip), "held by " + ", ".join(who)))
    owners = _ip_owners(snap)
    for ip, nodes in sorted(owners.items()):
        if len(set(nodes)) > 1:
            out.append(Violation(1, "ip-on-two-enis", str(ip), "EC2 ENIs of " + ", ".join(nodes)))
    for n in snap.nodes:
        for ip, a in sorted(n.assigned.items()):
            if n.name not in owners.get(ip, []):
                out.append(
                    Violation(
                        1,
                        "ip-not-on-node-eni",
                        str(ip),
                        f"assigned to {a.pod_namespace}/{a.pod_name} on {n.name}, but no ENI of "
                        f"{n.name} holds it in EC2",
                    )
                )
    return out + _check_pod_ips(snap)


def _check_pod_ips(snap: Snapshot) -> list[Violation]:
    """Invariant 1, Kubernetes' side, both families: no pod IP on two pods, and every pod
    IP of a node vpcnet manages held by that node's agent (its ``assigned`` mirror: the
    IPv4s in ``NodeView.assigned``, the IPv6s in ``NodeView.assigned6``)."""
    out: list[Violation] = []
    pod_ips: dict[PodIp, list[PodView]] = defaultdict(list)
    for p in snap.pods:
        for ip in p.ips():
            pod_ips[ip].append(p)
    held: dict[str, set[PodIp]] = {n.name: {*n.assigned, *n.assigned6} for n in snap.nodes}
    # IPv4 before IPv6, each family in address order (mixed families do not compare)
    for ip, pods in sorted(pod_ips.items(), key=lambda item: (item[0].version, int(item[0]))):
        if len(pods) > 1:
            names = ", ".join(f"{p.namespace}/{p.name}" for p in pods)
            out.append(Violation(1, "pod-ip-duplicate", str(ip), f"pods {names}"))
        for p in pods:
            if p.node in held and ip not in held[p.node]:
                out.append(
                    Violation(
                        1,
                        "pod-ip-not-assigned",
                        f"{p.namespace}/{p.name}",
                        f"pod IP {ip} is not assigned by the agent of {p.node}",
                    )
                )
    return out


def check_enis(snap: Snapshot) -> list[Violation]:
    """Invariant 2: every vpcnet ENI is attached to a live instance of the cluster, or
    deleted after the grace period."""
    out: list[Violation] = []
    nodes_by_instance = {n.instance_id: n for n in snap.nodes}
    for eni in sorted(snap.enis, key=lambda e: e.eni_id):
        if eni.instance_id is None:
            if eni.age_seconds > snap.gc_grace_seconds:
                out.append(
                    Violation(
                        2,
                        "leaked-eni",
                        eni.eni_id,
                        f"unattached for over {snap.gc_grace_seconds:.0f}s (node tag "
                        f"{eni.node_tag!r})",
                    )
                )
            continue
        node = nodes_by_instance.get(eni.instance_id)
        if node is None or not node.instance_alive:
            out.append(
                Violation(
                    2,
                    "orphaned-eni",
                    eni.eni_id,
                    f"attached to {eni.instance_id}, which is no live node of the cluster",
                )
            )
        elif eni.node_tag != node.name:
            out.append(
                Violation(
                    2,
                    "mistagged-eni",
                    eni.eni_id,
                    f"tagged for node {eni.node_tag!r} but attached to {node.name}",
                )
            )
    return out


def check_redis_matches_ec2(snap: Snapshot) -> list[Violation]:
    """Invariant 4's precondition: Redis pools equal EC2 (Redis is a cache of the truth)."""
    out: list[Violation] = []
    ec2_by_instance: dict[str, dict[str, Ec2Eni]] = defaultdict(dict)
    for eni in snap.enis:
        if eni.instance_id is not None:
            ec2_by_instance[eni.instance_id][eni.eni_id] = eni
    for n in snap.nodes:
        if not n.instance_alive:
            continue
        ec2 = ec2_by_instance.get(n.instance_id, {})
        redis_enis = {e.eni_id: e for e in n.redis_enis if not e.is_primary}
        for eni_id in sorted(set(ec2) - set(redis_enis)):
            out.append(Violation(4, "eni-missing-in-redis", f"{n.name}/{eni_id}", "in EC2 only"))
        for eni_id in sorted(set(redis_enis) - set(ec2)):
            out.append(Violation(4, "eni-missing-in-ec2", f"{n.name}/{eni_id}", "in Redis only"))
        for eni_id in sorted(set(ec2) & set(redis_enis)):
            want, have = ec2[eni_id], redis_enis[eni_id]
            if set(have.ips) != set(want.ips) or set(have.prefixes) != set(want.prefixes):
                out.append(
                    Violation(
                        4,
                        "pool-differs",
                        f"{n.name}/{eni_id}",
                        f"Redis {len(have.ips)} IPs/{len(have.prefixes)} prefixes, EC2 "
                        f"{len(want.ips)} IPs/{len(want.prefixes)} prefixes",
                    )
                )
        primary = [e for e in n.redis_enis if e.is_primary]
        if primary and set(primary[0].ips) != set(n.primary_eni_ips):
            out.append(
                Violation(
                    4,
                    "pool-differs",
                    f"{n.name}/{primary[0].eni_id}",
                    "primary ENI secondary IPs differ between Redis and EC2",
                )
            )
    return out


def check_taints(snap: Snapshot) -> list[Violation]:
    """Invariant 5: a node receives pods only once its agent has programmed it."""
    out: list[Violation] = []
    for n in snap.nodes:
        if not n.in_kubernetes:
            continue
        tainted = NOT_READY_TAINT in n.taints
        if not tainted and not n.agent_ready:
            out.append(
                Violation(5, "untainted-not-ready", n.name, "no not-ready taint, agent not ready")
            )
        if tainted and n.agent_ready and n.phase == "ready":
            out.append(Violation(5, "stale-taint", n.name, "agent ready but still tainted"))
        # The warm-pool scan taints a READY node with ENIs when no IP can be had (IPs
        # leaving the cooldown or a pool that can still grow are IPs an ADD waits for).
        if (n.agent_ready and n.phase == NodePhase.READY.value and n.redis_enis
                and NO_FREE_IPS_TAINT not in n.taints
                and no_ip_can_be_had(n.redis_enis, n.usage(), n.why_no_growth, n.ip_family)):
            out.append(Violation(5, "pool-empty-untainted", n.name,
                                 "no IP free or cooling down, the pool cannot grow "
                                 f"({n.why_no_growth}), and no taint"))
    return out


def audit(snap: Snapshot) -> list[Violation]:
    from vpcnet.ops.audit_ipv6 import check_ipv6  # it builds on this module's types

    return sorted(
        check_ip_uniqueness(snap)
        + check_enis(snap)
        + check_redis_matches_ec2(snap)
        + check_taints(snap)
        + check_ipv6(snap)
    )


def parse_ip(raw: str | None) -> IPv4 | None:
    if not raw:
        return None
    try:
        return ipaddress.IPv4Address(raw)
    except ValueError:
        return None
