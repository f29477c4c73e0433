"""Instance metadata as the agent sees it: the frozen values ``vpcnet.agent.imds`` reads.

Pure (no I/O), so that pure logic such as ``vpcnet.agent.truth`` can take them without
importing the IMDS client.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from vpcnet.errors import ImdsError


@dataclass(frozen=True, slots=True)
class ImdsInterface:
    """One attached ENI as the instance sees it (``network/interfaces/macs/<mac>/``)."""

    mac: str
    device_number: int
    interface_id: str
    subnet_id: str
    subnet_cidr: ipaddress.IPv4Network
    local_ipv4s: tuple[ipaddress.IPv4Address, ...]  # the ENI's primary address first
    ipv4_prefixes: tuple[ipaddress.IPv4Network, ...] = ()
    vpc_cidrs: tuple[ipaddress.IPv4Network, ...] = ()
    # IPv6 (``ipv6s``, ``ipv6-prefix``, ``subnet-ipv6-cidr-blocks``): empty when none.
    ipv6s: tuple[ipaddress.IPv6Address, ...] = ()
    ipv6_prefixes: tuple[ipaddress.IPv6Network, ...] = ()
    subnet_ipv6_cidr: ipaddress.IPv6Network | None = None

    @property
    def primary_ip(self) -> ipaddress.IPv4Address:
        if not self.local_ipv4s:
            raise ImdsError(f"interface {self.mac} has no IPv4 address in metadata")
        return self.local_ipv4s[0]


@dataclass(frozen=True, slots=True)
class InstanceIdentity:
    instance_id: str
    primary_mac: str
    primary_ip: ipaddress.IPv4Address
