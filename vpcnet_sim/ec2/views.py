"""Plain-dict views of instances and their ENIs (admin dump, IMDS, the VPC fabric)."""

from __future__ import annotations

from typing import Any

from vpcnet.errors import UnknownInstanceTypeError
from vpcnet_sim.ec2.limits import instance_limits
from vpcnet_sim.ec2.models import (
    SimEc2Backend,
    SimInstance,
    SimNetworkInterface,
    subnet_ipv6_cidr,
)


def vpc_cidrs(backend: SimEc2Backend, vpc_id: str) -> list[str]:
    vpc = backend.get_vpc(vpc_id)
    cidrs = [str(a["cidr_block"]) for a in vpc.get_cidr_block_association_set()]
    return cidrs or [vpc.cidr_block]


def vpc_ipv6_cidrs(backend: SimEc2Backend, vpc_id: str) -> list[str]:
    """The VPC's associated IPv6 blocks (its /56), empty for an IPv4-only VPC."""
    vpc = backend.get_vpc(vpc_id)
    return [
        str(a["cidr_block"])
        for a in vpc.get_cidr_block_association_set(ipv6=True)
        if a["cidr_block_state"]["state"] == "associated"
    ]


def subnet_view(backend: SimEc2Backend, subnet: Any) -> dict[str, Any]:
    return {
        "subnet_id": subnet.id,
        "cidr": subnet.cidr_block,
        "ipv6_cidr": subnet_ipv6_cidr(subnet),  # its /64, None for an IPv4-only subnet
        "vpc_id": subnet.vpc_id,
        "availability_zone": subnet.availability_zone,
    }


def eni_view(backend: SimEc2Backend, eni: SimNetworkInterface) -> dict[str, Any]:
    return {
        "eni_id": eni.id,
        "mac": eni.mac_address,
        "device_index": eni.device_index if eni.attachment_id else None,
        "attachment_id": eni.attachment_id,
        "status": eni.attachment_status,  # attaching | attached | detaching | None
        "eni_status": eni.status,  # available | in-use
        "delete_on_termination": bool(eni.delete_on_termination),
        "subnet_id": eni.subnet.id,
        "subnet_cidr": eni.subnet.cidr_block,
        "vpc_id": eni.subnet.vpc_id,
        "vpc_cidrs": vpc_cidrs(backend, eni.subnet.vpc_id),
        "availability_zone": eni.subnet.availability_zone,
        "primary_ip": eni.private_ip_address,
        "secondary_ips": eni.secondary_ips,
        "prefixes": eni.prefixes,
        "ipv6_addresses": list(eni.ipv6_addresses),
        "ipv6_prefixes": eni.ipv6_prefix_list,  # delegated /80s
        "subnet_ipv6_cidr": subnet_ipv6_cidr(eni.subnet),  # None: IPv4-only subnet
        "vpc_ipv6_cidrs": vpc_ipv6_cidrs(backend, eni.subnet.vpc_id),
        "security_groups": sorted(g.id for g in eni.group_set),
        "description": eni.description,
        "tags": dict(backend.tags.get(eni.id) or {}),
    }


def instance_view(backend: SimEc2Backend, instance: SimInstance) -> dict[str, Any]:
    tags = dict(backend.tags.get(instance.id) or {})
    try:
        lim = instance_limits(instance.instance_type)
        limits: dict[str, Any] | None = {
            "max_enis": lim.max_enis,
            "ipv4_per_eni": lim.ipv4_per_eni,
            "hypervisor": lim.hypervisor,
        }
    except UnknownInstanceTypeError:
        limits = None
    enis = [
        eni_view(backend, eni)
        for _, eni in sorted(instance.nics.items())
        if isinstance(eni, SimNetworkInterface)
    ]
    return {
        "instance_id": instance.id,
        "instance_type": instance.instance_type,
        "state": instance.state,
        "name": tags.get("Name", ""),
        "availability_zone": instance.placement.zone,
        "subnet_id": instance.subnet_id,
        "vpc_id": instance.vpc_id,
        "private_ip": instance.private_ip,
        "limits": limits,
        "tags": tags,
        "enis": enis,
    }
