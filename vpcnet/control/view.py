"""EC2's view of an instance, its ENIs and subnets, as pure values.

The EC2 adapter converts boto3's dicts into these at the edge; the planner reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vpcnet.domain import EniRecord, IPv4, IPv4Net, IPv6, IPv6Net
from vpcnet.wellknown import TAG_CLUSTER, TAG_CREATED_AT

_CREATED_AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # ISO 8601, UTC, as AWS writes its own times


def created_at_tag(unix_seconds: float) -> str:
    """The created-at tag's value for a time (provisioning writes it)."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime(_CREATED_AT_FORMAT)


def created_at(tags: Mapping[str, str]) -> float | None:
    """When the ENI was created per its tag (unix seconds), None if absent or unreadable.

    The one reader (GC and the audit): any ISO 8601 time, one without a zone taken as UTC.
    """
    raw = tags.get(TAG_CREATED_AT, "")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def eni_description(cluster: str, node: str) -> str:
    """Set on every ENI vpcnet creates: DescribeInstances returns descriptions, not tags,
    so ownership is known from the one describe call a provisioning pass makes."""
    return f"vpcnet/{cluster}/{node}"


@dataclass(frozen=True, slots=True)
class EniView:
    eni_id: str
    mac: str
    subnet_id: str
    primary_ip: IPv4
    ips: tuple[IPv4, ...] = ()  # secondary addresses
    prefixes: tuple[IPv4Net, ...] = ()
    security_groups: tuple[str, ...] = ()
    status: str = "in-use"  # EC2: available | attaching | in-use | detaching
    device_index: int | None = None
    attachment_id: str | None = None
    instance_id: str | None = None
    delete_on_termination: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    ipv6_addresses: tuple[IPv6, ...] = ()  # single IPv6 addresses (e.g. the instance's own)
    ipv6_prefixes: tuple[IPv6Net, ...] = ()  # delegated /80s

    @property
    def is_primary(self) -> bool:
        return self.device_index == 0

    def owned_by(self, cluster: str) -> bool:
        return self.tags.get(TAG_CLUSTER) == cluster or self.description.startswith(
            f"vpcnet/{cluster}/"
        )

    @property
    def used_slots(self) -> int:
        """IPv4 slots taken besides the primary address (a prefix takes one slot)."""
        return len(self.ips) + len(self.prefixes)

    @property
    def used_ipv6_slots(self) -> int:
        """IPv6 slots taken: every address and every /80 prefix takes one."""
        return len(self.ipv6_addresses) + len(self.ipv6_prefixes)

    def to_record(self, subnet_cidr: IPv4Net, subnet_ipv6_cidr: IPv6Net | None = None) -> EniRecord:
        return EniRecord(
            eni_id=self.eni_id,
            mac=self.mac.lower(),
            device_index=self.device_index if self.device_index is not None else -1,
            subnet_id=self.subnet_id,
            subnet_cidr=subnet_cidr,
            primary_ip=self.primary_ip,
            ips=tuple(sorted(self.ips)),
            prefixes=tuple(sorted(self.prefixes)),
            security_groups=tuple(sorted(self.security_groups)),
            is_primary=self.is_primary,
            ipv6_prefixes=tuple(sorted(self.ipv6_prefixes)),
            subnet_ipv6_cidr=subnet_ipv6_cidr,
        )


@dataclass(frozen=True, slots=True)
class InstanceView:
    instance_id: str
    instance_type: str
    availability_zone: str
    state: str  # pending | running | stopping | stopped | shutting-down | terminated
    subnet_id: str
    vpc_id: str
    primary_ip: IPv4 | None
    security_groups: tuple[str, ...]
    enis: tuple[EniView, ...]  # attached, any owner

    @property
    def alive(self) -> bool:
        return self.state not in ("shutting-down", "terminated")

    def primary_eni(self) -> EniView | None:
        return next((e for e in self.enis if e.is_primary), None)


@dataclass(frozen=True, slots=True)
class SubnetView:
    subnet_id: str
    cidr: IPv4Net
    availability_zone: str
    available_ips: int
    vpc_id: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    ipv6_cidr: IPv6Net | None = None  # the subnet's /64; None: IPv4-only subnet
