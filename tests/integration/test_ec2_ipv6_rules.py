"""AWS's IPv6 rules for what vpcnet calls (AssignIpv6Addresses, UnassignIpv6Addresses),
enforced by the emulator over boto3; each rule plain moto lacks is shown failing there."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.ipv6_support import (
    code_of,
    describe_eni,
    ipv6s_of,
    message_of,
    moto_world,
    plain_moto,
    prefixes_of,
    primary_eni,
    run_in,
)
from vpcnet_sim.ec2 import Ec2Emulator, World

__all__ = ["plain_moto"]


@pytest.fixture
def v4_world(ec2_emulator: Ec2Emulator) -> World:
    """Two dual-stack subnets and, third, an IPv4-only one."""
    ec2_emulator.set_config(ipv4_only_subnets=("10.0.64.0/19",))
    return ec2_emulator.bootstrap_vpc()


def node_eni(emu: Ec2Emulator, world: World, instance_type: str = "m5.large",
             subnet: int = 0) -> str:
    return primary_eni(emu.client(), emu.run_instance(instance_type, world.subnet_ids[subnet]))


def test_assign_ipv6_prefix_count_returns_and_describes_80s(
    ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.large", ec2_world.subnet_ids[0])
    eni = primary_eni(ec2, iid)
    resp = ec2.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6PrefixCount=2)
    got = resp["AssignedIpv6Prefixes"]
    assert len(got) == 2 and resp["AssignedIpv6Addresses"] == []
    subnet6 = ipaddress.IPv6Network(ec2_world.subnet_ipv6_cidrs[0])
    for p in got:
        net = ipaddress.IPv6Network(p)
        assert net.prefixlen == 80 and net.subnet_of(subnet6)
    assert prefixes_of(describe_eni(ec2, eni)) == got
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    (nic,) = inst["NetworkInterfaces"]
    assert [p["Ipv6Prefix"] for p in nic["Ipv6Prefixes"]] == got
    assert len(nic["Ipv6Addresses"]) == 1  # the instance's own address is still there
    # explicit prefixes and a count of single addresses work too
    free = str(next(n for n in subnet6.subnets(new_prefix=80)
                    if str(n) not in got and n != next(subnet6.subnets(new_prefix=80))))
    assert ec2.assign_ipv6_addresses(
        NetworkInterfaceId=eni, Ipv6Prefixes=[free])["AssignedIpv6Prefixes"] == [free]
    added = ec2.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6AddressCount=2)
    assert len(added["AssignedIpv6Addresses"]) == 2
    assert len(ipv6s_of(describe_eni(ec2, eni))) == 3


def test_plain_moto_hands_out_no_prefix(plain_moto: Any) -> None:
    world = moto_world(plain_moto)
    eni = primary_eni(plain_moto, run_in(plain_moto, world.subnet_id))
    resp = plain_moto.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6PrefixCount=2)
    assert resp.get("AssignedIpv6Prefixes", []) == []
    assert prefixes_of(describe_eni(plain_moto, eni)) == []


def test_unassign_ipv6_prefixes_returns_them_and_frees_them(
    ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    ec2 = ec2_emulator.client()
    eni = node_eni(ec2_emulator, ec2_world)
    a, b = ec2.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6PrefixCount=2)["AssignedIpv6Prefixes"]
    resp = ec2.unassign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6Prefixes=[a])
    assert resp["UnassignedIpv6Prefixes"] == [a]
    assert prefixes_of(describe_eni(ec2, eni)) == [b]
    # released: another ENI may now be given exactly that /80
    other = node_eni(ec2_emulator, ec2_world)
    assert ec2.assign_ipv6_addresses(
        NetworkInterfaceId=other, Ipv6Prefixes=[a])["AssignedIpv6Prefixes"] == [a]


def test_plain_moto_unassigns_no_prefix(plain_moto: Any) -> None:
    world = moto_world(plain_moto)
    eni = primary_eni(plain_moto, run_in(plain_moto, world.subnet_id))
    resp = plain_moto.unassign_ipv6_addresses(NetworkInterfaceId=eni,
                                               Ipv6Prefixes=["2001:db8::/80"])
    assert resp.get("UnassignedIpv6Prefixes", []) == []  # nor does it refuse


def test_a_subnet_without_ipv6_refuses_ipv6_addresses_and_prefixes(
    ec2_emulator: Ec2Emulator, v4_world: World,
) -> None:
    ec2 = ec2_emulator.client()
    eni = node_eni(ec2_emulator, v4_world, subnet=2)
    for params in ({"Ipv6PrefixCount": 1}, {"Ipv6AddressCount": 1}):
        with pytest.raises(ClientError) as exc:
            ec2.assign_ipv6_addresses(NetworkInterfaceId=eni, **params)
        assert code_of(exc) == "InvalidParameterValue"
        assert v4_world.subnet_ids[2] in message_of(exc)
    with pytest.raises(ClientError) as exc:
        ec2.create_network_interface(SubnetId=v4_world.subnet_ids[2], Ipv6PrefixCount=1)
    assert code_of(exc) == "InvalidParameterValue"
    assert ec2.describe_network_interfaces(
        Filters=[{"Name": "subnet-id", "Values": [v4_world.subnet_ids[2]]}])[
        "NetworkInterfaces"][0]["NetworkInterfaceId"] == eni  # nothing half-made


def test_plain_moto_takes_a_prefix_request_in_an_ipv4_only_subnet(plain_moto: Any) -> None:
    world = moto_world(plain_moto)
    eni = plain_moto.create_network_interface(SubnetId=world.v4_subnet_id)[
        "NetworkInterface"]["NetworkInterfaceId"]
    plain_moto.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6PrefixCount=1)  # no refusal


def test_addresses_plus_prefixes_stay_within_the_type_limit(
    ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    ec2 = ec2_emulator.client()
    eni = node_eni(ec2_emulator, ec2_world, "m5.large")  # 10 per ENI; its own address is 1
    ec2.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6PrefixCount=6)
    ec2.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6AddressCount=3)  # 1 + 6 + 3 = 10
    for params in ({"Ipv6PrefixCount": 1}, {"Ipv6AddressCount": 1}):
        with pytest.raises(ClientError) as exc:
            ec2.assign_ipv6_addresses(NetworkInterfaceId=eni, **params)
        assert code_of(exc) == "PrivateIpAddressLimitExceeded"
    got = describe_eni(ec2, eni)
    assert len(prefixes_of(got)) == 6 and len(ipv6s_of(got)) == 4


def test_an_eni_beyond_the_ipv6_limit_does_not_attach(
    ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("t3.nano", ec2_world.subnet_ids[0])  # 2 IPv6 per ENI
    eni = ec2.create_network_interface(SubnetId=ec2_world.subnet_ids[0], Ipv6PrefixCount=3)[
        "NetworkInterface"]["NetworkInterfaceId"]
    with pytest.raises(ClientError) as exc:
        ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=iid, DeviceIndex=1)
    assert code_of(exc) == "PrivateIpAddressLimitExceeded"
    assert describe_eni(ec2, eni)["Status"] == "available"


def test_plain_moto_has_no_ipv6_limit(plain_moto: Any) -> None:
    world = moto_world(plain_moto)
    eni = primary_eni(plain_moto, run_in(plain_moto, world.subnet_id, "m5.large"))
    plain_moto.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6AddressCount=11)
    assert len(ipv6s_of(describe_eni(plain_moto, eni))) == 11


def test_prefixes_only_on_nitro(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    eni = node_eni(ec2_emulator, ec2_world, "t2.micro")  # Xen
    with pytest.raises(ClientError) as exc:
        ec2.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6PrefixCount=1)
    assert code_of(exc) == "InvalidParameterValue"
    assert "t2.micro" in message_of(exc)
    assert prefixes_of(describe_eni(ec2, eni)) == []
    ec2.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6AddressCount=1)  # addresses are fine


def test_plain_moto_takes_a_prefix_request_on_xen(plain_moto: Any) -> None:
    world = moto_world(plain_moto)
    eni = primary_eni(plain_moto, run_in(plain_moto, world.subnet_id, "t2.micro"))
    plain_moto.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6PrefixCount=1)  # no refusal


def test_every_80_is_unique_in_its_subnet_while_held(
    ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    ec2 = ec2_emulator.client()
    held: list[str] = []
    enis = [node_eni(ec2_emulator, ec2_world, "c5.xlarge") for _ in range(3)]  # 15 each
    for eni in enis:
        held += ec2.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6PrefixCount=10)[
            "AssignedIpv6Prefixes"]
    assert len(held) == len(set(held)) == 30
    own = {ipaddress.IPv6Address(ip) for eni in enis for ip in ipv6s_of(describe_eni(ec2, eni))}
    assert not any(ip in ipaddress.IPv6Network(p) for ip in own for p in held)
    # a held /80 cannot be given to another ENI
    with pytest.raises(ClientError) as exc:
        ec2.assign_ipv6_addresses(NetworkInterfaceId=enis[1], Ipv6Prefixes=[held[0]])
    assert code_of(exc) == "InvalidParameterValue"
    # released prefixes come back only after the rest of the /64 (not straight away)
    ec2.unassign_ipv6_addresses(NetworkInterfaceId=enis[0], Ipv6Prefixes=held[:2])
    fresh = ec2.assign_ipv6_addresses(NetworkInterfaceId=enis[2], Ipv6PrefixCount=2)[
        "AssignedIpv6Prefixes"]
    assert not set(fresh) & set(held)


def test_plain_moto_gives_a_held_80_to_another_eni(plain_moto: Any) -> None:
    world = moto_world(plain_moto)
    a = primary_eni(plain_moto, run_in(plain_moto, world.subnet_id))
    b = primary_eni(plain_moto, run_in(plain_moto, world.subnet_id))
    subnet6 = plain_moto.describe_subnets(SubnetIds=[world.subnet_id])["Subnets"][0][
        "Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"]
    p = str(list(ipaddress.IPv6Network(subnet6).subnets(new_prefix=80))[1])
    plain_moto.assign_ipv6_addresses(NetworkInterfaceId=a, Ipv6Prefixes=[p])
    plain_moto.assign_ipv6_addresses(NetworkInterfaceId=b, Ipv6Prefixes=[p])  # no refusal


def test_a_deleted_enis_prefixes_are_released(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    eni = ec2.create_network_interface(SubnetId=ec2_world.subnet_ids[0], Ipv6PrefixCount=2)[
        "NetworkInterface"]
    mine = prefixes_of(eni)
    other = node_eni(ec2_emulator, ec2_world)
    with pytest.raises(ClientError):
        ec2.assign_ipv6_addresses(NetworkInterfaceId=other, Ipv6Prefixes=mine[:1])
    ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
    assert ec2.assign_ipv6_addresses(
        NetworkInterfaceId=other, Ipv6Prefixes=mine)["AssignedIpv6Prefixes"] == mine


def test_a_terminated_instances_prefixes_are_released(
    ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.large", ec2_world.subnet_ids[0])
    mine = ec2.assign_ipv6_addresses(NetworkInterfaceId=primary_eni(ec2, iid),
                                     Ipv6PrefixCount=1)["AssignedIpv6Prefixes"]
    ec2_emulator.terminate_instance(iid)  # its primary ENI is DeleteOnTermination
    other = node_eni(ec2_emulator, ec2_world)
    assert ec2.assign_ipv6_addresses(
        NetworkInterfaceId=other, Ipv6Prefixes=mine)["AssignedIpv6Prefixes"] == mine


def test_unassigning_a_prefix_the_eni_does_not_hold_is_refused(
    ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    ec2 = ec2_emulator.client()
    a = node_eni(ec2_emulator, ec2_world)
    b = node_eni(ec2_emulator, ec2_world)
    (held_by_b,) = ec2.assign_ipv6_addresses(NetworkInterfaceId=b, Ipv6PrefixCount=1)[
        "AssignedIpv6Prefixes"]
    (mine,) = ec2.assign_ipv6_addresses(NetworkInterfaceId=a, Ipv6PrefixCount=1)[
        "AssignedIpv6Prefixes"]
    with pytest.raises(ClientError) as exc:
        ec2.unassign_ipv6_addresses(NetworkInterfaceId=a, Ipv6Prefixes=[mine, held_by_b])
    assert code_of(exc) == "InvalidParameterValue"
    assert a in message_of(exc)
    assert prefixes_of(describe_eni(ec2, a)) == [mine]  # nothing half-done
    assert prefixes_of(describe_eni(ec2, b)) == [held_by_b]


def test_bad_ipv6_requests_are_refused(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    eni = node_eni(ec2_emulator, ec2_world)
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "MissingParameter"),
        ({"Ipv6PrefixCount": 1, "Ipv6AddressCount": 1}, "InvalidParameterCombination"),
        ({"Ipv6PrefixCount": 1, "Ipv6Prefixes": ["2001:db8:0:100:9::/80"]},
         "InvalidParameterCombination"),
        ({"Ipv6Prefixes": ["2001:db8:0:100::/64"]}, "InvalidParameterValue"),
        ({"Ipv6Prefixes": ["2001:db8:ff::/80"]}, "InvalidParameterValue"),  # not in the /64
    ]
    for params, code in cases:
        with pytest.raises(ClientError) as exc:
            ec2.assign_ipv6_addresses(NetworkInterfaceId=eni, **params)
        assert code_of(exc) == code, params
    with pytest.raises(ClientError) as exc:
        ec2.unassign_ipv6_addresses(NetworkInterfaceId=eni)
    assert code_of(exc) == "MissingParameter"
    assert prefixes_of(describe_eni(ec2, eni)) == []
