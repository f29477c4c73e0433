"""The emulator's IPv6 address plan: a /56 per VPC, a /64 per subnet.

AWS hands each VPC an Amazon-provided /56 and each subnet a /64 of it. The emulator
takes them from the documentation range 2001:db8::/32, the n-th VPC of an emulator
getting the n-th /56 (n >= 1), so VPCs never overlap and addresses stay recognisable;
the simulated VPC keeps 2001:db8:ffff::/48 for its outside network, far above any
/56 an emulator hands out.
"""

from __future__ import annotations

import ipaddress
from typing import Any

IPV6_SPACE = ipaddress.IPv6Network("2001:db8::/32")
VPC_IPV6_LEN = 56
SUBNET_IPV6_LEN = 64
# /56s below the outside network's /48 (2001:db8:ffff::/48 = /56 number 0xffff00)
_MAX_VPCS = 0xFFFF00 - 1


def vpc_ipv6_block(n: int) -> ipaddress.IPv6Network:
    """The n-th VPC's /56 (n >= 1)."""
    if not 1 <= n <= _MAX_VPCS:
        raise ValueError(f"no IPv6 /56 left for VPC number {n}")
    base = int(IPV6_SPACE.network_address) + (n << (128 - VPC_IPV6_LEN))
    return ipaddress.IPv6Network((base, VPC_IPV6_LEN))


def subnet_ipv6_block(vpc6: ipaddress.IPv6Network, i: int) -> ipaddress.IPv6Network:
    """The i-th subnet's /64 of a VPC's /56 (i from 0)."""
    count = 1 << (SUBNET_IPV6_LEN - vpc6.prefixlen)
    if not 0 <= i < count:
        raise ValueError(f"a /{vpc6.prefixlen} holds {count} subnets, not {i + 1}")
    base = int(vpc6.network_address) + (i << (128 - SUBNET_IPV6_LEN))
    return ipaddress.IPv6Network((base, SUBNET_IPV6_LEN))


def associate_vpc_ipv6(vpc: Any, n: int) -> ipaddress.IPv6Network:
    """Give a moto VPC its /56 as an associated Amazon-provided IPv6 block.

    moto draws a random block for ``AmazonProvidedIpv6CidrBlock``; ours replaces it so
    the /56 is distinct per VPC and lies in the documentation range.
    """
    block = vpc_ipv6_block(n)
    assoc = vpc.associate_vpc_cidr_block(vpc.cidr_block, amazon_provided_ipv6_cidr_block=True)
    assoc["cidr_block"] = str(block)
    return block
