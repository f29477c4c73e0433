"""CreateNetworkInterface with IPv6 prefixes or addresses, idempotent under its
ClientToken: the same token and parameters give the same ENI with the same /80s."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.ipv6_support import (
    code_of,
    describe_eni,
    ipv6s_of,
    moto_world,
    plain_moto,
    prefixes_of,
)
from vpcnet_sim.ec2 import Ec2Emulator, World

__all__ = ["plain_moto"]


def test_create_with_ipv6_prefixes_under_a_client_token(
    ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    ec2 = ec2_emulator.client()
    params: dict[str, Any] = {"SubnetId": ec2_world.subnet_ids[0],
                              "Groups": [ec2_world.security_group_id],
                              "Ipv6PrefixCount": 2, "ClientToken": "tok-1"}
    first = ec2.create_network_interface(**params)["NetworkInterface"]
    mine = prefixes_of(first)
    assert len(mine) == 2
    assert all(ipaddress.IPv6Network(p).prefixlen == 80 for p in mine)
    again = ec2.create_network_interface(**params)["NetworkInterface"]
    assert again["NetworkInterfaceId"] == first["NetworkInterfaceId"]
    assert prefixes_of(again) == mine
    assert len(ec2.describe_network_interfaces(
        Filters=[{"Name": "subnet-id", "Values": [ec2_world.subnet_ids[0]]}])[
        "NetworkInterfaces"]) == 1
    with pytest.raises(ClientError) as exc:
        ec2.create_network_interface(**{**params, "Ipv6PrefixCount": 3})
    assert code_of(exc) == "IdempotentParameterMismatch"
    assert prefixes_of(describe_eni(ec2, first["NetworkInterfaceId"])) == mine


def test_create_with_ipv6_addresses(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    eni = ec2.create_network_interface(SubnetId=ec2_world.subnet_ids[1], Ipv6AddressCount=2)[
        "NetworkInterface"]
    ips = ipv6s_of(eni)
    assert len(ips) == 2 and prefixes_of(eni) == []
    net = ipaddress.IPv6Network(ec2_world.subnet_ipv6_cidrs[1])
    assert all(ipaddress.IPv6Address(ip) in net for ip in ips)
    with pytest.raises(ClientError) as exc:
        ec2.create_network_interface(SubnetId=ec2_world.subnet_ids[1], Ipv6AddressCount=1,
                                     Ipv6PrefixCount=1)
    assert code_of(exc) == "InvalidParameterCombination"


def test_plain_moto_ignores_the_prefixes_and_the_token(plain_moto: Any) -> None:
    world = moto_world(plain_moto)
    params: dict[str, Any] = {"SubnetId": world.subnet_id, "Ipv6PrefixCount": 2,
                              "ClientToken": "tok-1"}
    first = plain_moto.create_network_interface(**params)["NetworkInterface"]
    assert prefixes_of(first) == []
    other = plain_moto.create_network_interface(**{**params, "Ipv6PrefixCount": 3})
    assert other["NetworkInterface"]["NetworkInterfaceId"] != first["NetworkInterfaceId"]
