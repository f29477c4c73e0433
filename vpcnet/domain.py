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
IPv6 = ipaddress.IPv6Address
IPv6Net = ipaddress.IPv6Network
PodIp = IPv4 | IPv6  # a pod address of either family

# AWS delegates IPv6 to an ENI as /80 prefixes (Nitro): 2**48 pod addresses each.
IPV6_PREFIX_LEN = 80


class Mode(enum.StrEnum):
    FULL = "full"  # the seed's behaviour: max ENIs x max IPs up front
    WARM = "warm"  # warm/minimum IP targets, warm ENI target (like the AWS VPC CNI)
    PREFIX = "prefix"  # /28 prefix delegation with a warm-prefix target


class IpFamily(enum.StrEnum):
    """Which address families a node's pods get (cluster setting, per node by annotation)."""

    IPV4 = "ipv4"  # one IPv4 per pod (the default)
    IPV6 = "ipv6"  # one IPv6 per pod, from /80 prefixes on the node's ENIs
    DUAL = "dual"  # one of each on every pod

    @property
    def wants_ipv4(self) -> bool:
        return self is not IpFamily.IPV6

    @property
    def wants_ipv6(self) -> bool:
        return self is not IpFamily.IPV4

    @classmethod
    def parse(cls, raw: str) -> IpFamily:
        """A stored family: "" (records older than IPv6 support) reads as ipv4."""
        return cls(raw) if raw else cls.IPV4


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
    # IPv6 addresses per ENI (EC2's Ipv6AddressesPerInterface; a /80 prefix takes one);
    # None: not known, taken as ipv4_per_eni, which is what EC2 lists for current types.
    ipv6_per_eni: int | None = None
    # vCPUs (EC2's VCpuInfo.DefaultVCpus): the IPv6 max-pods cap depends on them (one /80
    # does not bound the pods); None: not known.
    vcpus: int | None = None

    @property
    def supports_prefixes(self) -> bool:
        return self.hypervisor == "nitro"

    @property
    def ipv6_slots(self) -> int:
        """IPv6 addresses or /80 prefixes one ENI can hold."""
        return self.ipv4_per_eni if self.ipv6_per_eni is None else self.ipv6_per_eni


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
    ipv6_prefixes: tuple[IPv6Net, ...] = ()  # delegated /80s usable by pods
    subnet_ipv6_cidr: IPv6Net | None = None  # the subnet's /64, None when it has none

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
                "ipv6_prefixes": [str(p) for p in self.ipv6_prefixes],
                "subnet_ipv6_cidr": str(self.subnet_ipv6_cidr) if self.subnet_ipv6_cidr else "",
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
            ipv6_prefixes=tuple(ipaddress.IPv6Network(p) for p in d.get("ipv6_prefixes", ())),
            subnet_ipv6_cidr=ipaddress.IPv6Network(d["subnet_ipv6_cidr"]) if d.get("subnet_ipv6_cidr") else None,
        )


@dataclass(frozen=True, slots=True)
class Assignment:
    """An IP held by a pod. The IPAM key is the CNI key (container id, ifname); a
    dual-stack pod holds two, one per family, under the same key."""

    ip: PodIp
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
            ip=ipaddress.ip_address(d["ip"]),
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
