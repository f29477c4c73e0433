"""Kubernetes objects as vpcnet sees them: small frozen values converted at the edge.

Pure: the conversions read the API's JSON shapes (dicts), so this module imports no
Kubernetes library and is unit-tested without a server.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vpcnet.domain import NodeRef, parse_provider_id


class TaintEffect(enum.StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class EventType(enum.StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class WatchEventType(enum.StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    BOOKMARK = "BOOKMARK"


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    effect: str
    value: str = ""

    def to_api(self) -> dict[str, str]:
        d = {"key": self.key, "effect": self.effect}
        if self.value:
            d["value"] = self.value
        return d

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Taint:
        return cls(
            key=str(d.get("key", "")),
            effect=str(d.get("effect", "")),
            value=str(d.get("value") or ""),
        )


@dataclass(frozen=True, slots=True)
class NodeObj:
    """A Node as listed or watched: what the watcher and the tasks look at."""

    name: str
    uid: str = ""
    resource_version: str = ""
    provider_id: str = ""  # "" when the node has none (yet)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    deleting: bool = False  # metadata.deletionTimestamp is set

    def has_taint(self, key: str, effect: str | None = None) -> bool:
        return any(t.key == key and (effect is None or t.effect == effect) for t in self.taints)

    def to_ref(self) -> NodeRef:
        """The domain view; ValueError when the providerID is missing or not AWS's."""
        az, instance_id = parse_provider_id(self.provider_id)
        return NodeRef(
            name=self.name,
            instance_id=instance_id,
            availability_zone=az,
            labels=dict(self.labels),
            annotations=dict(self.annotations),
        )

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> NodeObj:
        meta: Mapping[str, Any] = d.get("metadata") or {}
        spec: Mapping[str, Any] = d.get("spec") or {}
        return cls(
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            resource_version=str(meta.get("resourceVersion", "")),
            provider_id=str(spec.get("providerID") or ""),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            taints=tuple(Taint.from_api(t) for t in spec.get("taints") or ()),
            deleting=bool(meta.get("deletionTimestamp")),
        )


@dataclass(frozen=True, slots=True)
class NodeWatchEvent:
    """One watch event; ``node`` is None only for BOOKMARK (which carries just a version)."""

    type: WatchEventType
    resource_version: str
    node: NodeObj | None = None


@dataclass(frozen=True, slots=True)
class PodObj:
    namespace: str
    name: str
    uid: str = ""
    node_name: str = ""
    phase: str = ""
    pod_ip: ipaddress.IPv4Address | None = None  # the pod's IPv4 (of ``pod_ips``), if any
    host_network: bool = False
    # Every address Kubernetes lists for the pod (``status.podIPs``, at most one per
    # family; ``status.podIP`` where the list is absent), in its order.
    pod_ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()

    @property
    def pod_ip6(self) -> ipaddress.IPv6Address | None:
        """The pod's IPv6 address, if it has one."""
        return next((ip for ip in self.pod_ips if isinstance(ip, ipaddress.IPv6Address)), None)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> PodObj:
        meta: Mapping[str, Any] = d.get("metadata") or {}
        spec: Mapping[str, Any] = d.get("spec") or {}
        status: Mapping[str, Any] = d.get("status") or {}
        ips = _pod_ips(status)
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            node_name=str(spec.get("nodeName") or ""),
            phase=str(status.get("phase") or ""),
            pod_ip=next((ip for ip in ips if isinstance(ip, ipaddress.IPv4Address)), None),
            host_network=bool(spec.get("hostNetwork", False)),
            pod_ips=ips,
        )


def _pod_ips(status: Mapping[str, Any]) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """``status.podIPs`` (``[{"ip": ...}]``), else ``status.podIP``; garbage entries are
    no address of ours and are skipped, as are repeats."""
    listed = status.get("podIPs")
    raw: list[Any] = (
        [e.get("ip") for e in listed if isinstance(e, Mapping)] if isinstance(listed, list) and listed
        else [status.get("podIP")]
    )
    out: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for text in raw:
        if not text or not isinstance(text, str):
            continue
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if ip not in out:
            out.append(ip)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class KubeEvent:
    """A core/v1 Event about a node, as read back (for status, inspect and tests)."""

    name: str
    reason: str
    message: str
    type: str
    count: int
    first_timestamp: datetime | None = None
    last_timestamp: datetime | None = None
    component: str = ""

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> KubeEvent:
        meta: Mapping[str, Any] = d.get("metadata") or {}
        source: Mapping[str, Any] = d.get("source") or {}
        return cls(
            name=str(meta.get("name", "")),
            reason=str(d.get("reason") or ""),
            message=str(d.get("message") or ""),
            type=str(d.get("type") or ""),
            count=int(d.get("count") or 1),
            first_timestamp=parse_time(d.get("firstTimestamp")),
            last_timestamp=parse_time(d.get("lastTimestamp")),
            component=str(source.get("component") or d.get("reportingComponent") or ""),
        )


@dataclass(frozen=True, slots=True)
class LeaseSpec:
    """coordination.k8s.io/v1 LeaseSpec; times are timezone-aware UTC."""

    holder_identity: str = ""
    lease_duration_seconds: int = 15
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    lease_transitions: int = 0

    def to_api(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "holderIdentity": self.holder_identity,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.lease_transitions,
        }
        if self.acquire_time is not None:
            d["acquireTime"] = format_micro_time(self.acquire_time)
        if self.renew_time is not None:
            d["renewTime"] = format_micro_time(self.renew_time)
        return d

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> LeaseSpec:
        return cls(
            holder_identity=str(d.get("holderIdentity") or ""),
            lease_duration_seconds=int(d.get("leaseDurationSeconds") or 0),
            acquire_time=parse_time(d.get("acquireTime")),
            renew_time=parse_time(d.get("renewTime")),
            lease_transitions=int(d.get("leaseTransitions") or 0),
        )


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    namespace: str
    resource_version: str
    spec: LeaseSpec

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Lease:
        meta: Mapping[str, Any] = d.get("metadata") or {}
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            resource_version=str(meta.get("resourceVersion", "")),
            spec=LeaseSpec.from_api(d.get("spec") or {}),
        )


def format_micro_time(t: datetime) -> str:
    """metav1.MicroTime: RFC 3339 in UTC with microseconds."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_time(t: datetime) -> str:
    """metav1.Time: RFC 3339 in UTC, whole seconds."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(raw: object) -> datetime | None:
    """Time or MicroTime as the API serialises them; None when absent or unparsable."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)
