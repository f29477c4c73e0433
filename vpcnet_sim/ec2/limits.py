"""Per-instance-type ENI, IPv4 and IPv6 limits, from the same data DescribeInstanceTypes serves.

moto ships AWS's instance type catalogue; using it for both the API answer and the
enforcement keeps the two from ever disagreeing.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from moto.ec2.models.instance_types import INSTANCE_TYPES

from vpcnet.domain import InstanceLimits
from vpcnet.errors import UnknownInstanceTypeError


@cache
def instance_limits(instance_type: str) -> InstanceLimits:
    data: dict[str, Any] | None = INSTANCE_TYPES.get(instance_type)
    if data is None:
        raise UnknownInstanceTypeError(f"unknown instance type {instance_type!r}")
    net = data["NetworkInfo"]
    # Bare-metal entries carry no Hypervisor field; they are Nitro systems.
    hypervisor = data.get("Hypervisor") or ("nitro" if data.get("BareMetal") else "xen")
    return InstanceLimits(
        instance_type=instance_type,
        max_enis=int(net["MaximumNetworkInterfaces"]),
        ipv4_per_eni=int(net["Ipv4AddressesPerInterface"]),
        hypervisor=str(hypervisor),
        # IPv6 addresses + /80 prefixes one ENI may hold (0 where IPv6 is unsupported)
        ipv6_per_eni=int(net.get("Ipv6AddressesPerInterface", 0)) if net.get("Ipv6Supported") else 0,
    )


def is_known(instance_type: str) -> bool:
    return instance_type in INSTANCE_TYPES


# An unattached ENI may hold as many addresses as the largest instance type allows.
MAX_IPV4_PER_ENI = max(int(t["NetworkInfo"]["Ipv4AddressesPerInterface"]) for t in INSTANCE_TYPES.values())
MAX_IPV6_PER_ENI = max(int(t["NetworkInfo"].get("Ipv6AddressesPerInterface", 0)) for t in INSTANCE_TYPES.values())
