"""Domain values shared by the control plane, the agent and the tools.

Pure data: no I/O library is imported here. SDK shapes (boto3 dicts, kubernetes
objects) are converted to these at the adapter edge.
"""

from __future__ import annotations

import enum
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

IPv4 = ipaddress.IPv4Address
IPv4Net = ipaddress.IPv4Network


class Mode(enum.StrEnum):
    FULL = "full"  # the seed's behaviour: max ENIs x max IPs up front
    WARM = "warm"  # warm/minimum IP targets, warm ENI target (like the AWS VPC CNI)
    PREFIX = "prefix"  # /28 prefix delegation with a warm-prefix target


class NodePhase(enum.StrEnum):
    PENDING = "pending"  # seen by the watcher, provision enqueued
    PROVISIONING = "provisioning"
    PROVISIONED = "provisioned"  # EC2 done, waiting for the agent
    READY = "ready"  # agent programmed the interfaces; taint removed
    ERROR = "error"  # permanent error; see node.error
    RELEASING = "releasing"


@dataclass(frozen=True, slots=True)
class InstanceLimits:
    instance_type: str
    max_enis: int  # including the primary ENI
    ipv4_per_eni: int  # including each ENI's own primary address
    hypervisor: str = "nitro"

    @property
    def supports_prefixes(self) -> bool:
        return self.hypervisor == "nitro"


@dataclass(frozen=True, slots=True)
class EniRecord:
    """One ENI of a node as vpcnet's state holds it (Redis, agent checkpoint)."""

    eni_id: str
    mac: str
    device_index: int
    subnet_id: str
    subnet_cidr: IPv4Net
    primary_ip: IPv4
    ips: tuple[IPv4, ...] = ()  # secondary IPs usable by pods
    prefixes: tuple[IPv4Net, ...] = ()  # delegated /28s usable by pods
    security_groups: tuple[str, ...] = ()
    is_primary: bool = False

    @property
    def gateway(self) -> IPv4:
        """The VPC router answers on the first host address of every subnet."""
        return self.subnet_cidr.network_address + 1

    def pod_ips(self) -> tuple[IPv4, ...]:
        out = list(self.ips)
        for p in self.prefixes:
            out.extend(p)  # every address of a delegated prefix is usable
        return tuple(out)

    def to_json(self) -> str:
        return json.dumps(
            {
                "eni_id": self.eni_id,
                "mac": self.mac,
                "device_index": self.device_index,
                "subnet_id": self.subnet_id,
                "subnet_cidr": str(self.subnet_cidr),
                "primary_ip": str(self.primary_ip),
                "ips": [str(i) for i in self.ips],
                "prefixes": [str(p) for p in self.prefixes],
                "security_groups": list(self.security_groups),
                "is_primary": self.is_primary,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> EniRecord:
        d: Mapping[str, Any] = json.loads(raw)
        return cls(
            eni_id=d["eni_id"],
            mac=d["mac"].lower(),
            device_index=int(d["device_index"]),
            subnet_id=d["subnet_id"],
            subnet_cidr=ipaddress.IPv4Network(d["subnet_cidr"]),
            primary_ip=ipaddress.IPv4Address(d["primary_ip"]),
            ips=tuple(ipaddress.IPv4Address(i) for i in d.get("ips", ())),
            prefixes=tuple(ipaddress.IPv4Network(p) for p in d.get("prefixes", ())),
            security_groups=tuple(d.get("security_groups", ())),
            is_primary=bool(d.get("is_primary", False)),
        )


@dataclass(frozen=True, slots=True)
class Assignment:
    """An IP held by a pod. The IPAM key is the CNI key (container id, ifname)."""

    ip: IPv4
    container_id: str
    ifname: str
    pod_namespace: str = ""
    pod_name: str = ""
    since: float = 0.0

    def to_json(self) -> str:
        return json.dumps(
            {
                "ip": str(self.ip),
                "container_id": self.container_id,
                "ifname": self.ifname,
                "pod_namespace": self.pod_namespace,
                "pod_name": self.pod_name,
                "since": self.since,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Assignment:
        d = json.loads(raw)
        return cls(
            ip=ipaddress.IPv4Address(d["ip"]),
            container_id=d["container_id"],
            ifname=d["ifname"],
            pod_namespace=d.get("pod_namespace", ""),
            pod_name=d.get("pod_name", ""),
            since=float(d.get("since", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class NodeRef:
    """What the watcher knows of a Kubernetes node with an AWS providerID."""

    name: str
    instance_id: str
    availability_zone: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


def parse_provider_id(provider_id: str) -> tuple[str, str]:
    """``aws:///us-east-1a/i-0abc`` -> (``us-east-1a``, ``i-0abc``); ValueError otherwise."""
    prefix = "aws:///"
    if not provider_id.startswith(prefix):
        raise ValueError(f"not an AWS providerID: {provider_id!r}")
    parts = provider_id[len(prefix) :].split("/")
    if len(parts) != 2 or not parts[0] or not parts[1].startswith("i-"):
        raise ValueError(f"malformed AWS providerID: {provider_id!r}")
    return parts[0], parts[1]
