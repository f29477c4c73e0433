"""The emulator's IPv6 world: a /56 per VPC, a /64 per dual-stack subnet, an IPv6
address on an instance's primary ENI, IPv6 limits in DescribeInstanceTypes."""

from __future__ import annotations

import ipaddress
from typing import Any

from tests.integration.ipv6_support import (
    describe_eni,
    ipv6s_of,
    moto_world,
    plain_moto,
    primary_eni,
    run_in,
)
from vpcnet_sim.ec2 import Ec2Emulator, Ec2SimConfig, World

__all__ = ["plain_moto"]  # the fixture, imported for pytest


def test_each_vpc_gets_its_own_56_and_each_subnet_a_64_of_it(ec2_emulator: Ec2Emulator) -> None:
    ec2 = ec2_emulator.client()
    first = ec2_emulator.bootstrap_vpc()
    second = ec2_emulator.bootstrap_vpc(cidr="10.1.0.0/16", subnets=("10.1.0.0/20",))
    blocks = []
    for world in (first, second):
        vpc = ec2.describe_vpcs(VpcIds=[world.vpc_id])["Vpcs"][0]
        (assoc,) = vpc["Ipv6CidrBlockAssociationSet"]
        vpc6 = ipaddress.IPv6Network(assoc["Ipv6CidrBlock"])
        assert assoc["Ipv6CidrBlockState"]["State"] == "associated"
        assert vpc6.prefixlen == 56 and vpc6.subnet_of(ipaddress.IPv6Network("2001:db8::/32"))
        assert str(vpc6) == world.vpc_ipv6_cidr
        subnets = ec2.describe_subnets(SubnetIds=list(world.subnet_ids))["Subnets"]
        got = {s["SubnetId"]: s["Ipv6CidrBlockAssociationSet"] for s in subnets}
        sub6 = []
        for sid, want in zip(world.subnet_ids, world.subnet_ipv6_cidrs, strict=True):
            (sassoc,) = got[sid]
            assert sassoc["Ipv6CidrBlockState"]["State"] == "associated"
            net = ipaddress.IPv6Network(sassoc["Ipv6CidrBlock"])
            assert net.prefixlen == 64 and net.subnet_of(vpc6) and str(net) == want
            sub6.append(net)
        assert len(set(sub6)) == len(sub6)
        blocks.append(vpc6)
    assert not blocks[0].overlaps(blocks[1])


def test_plain_moto_reports_a_subnet_block_state_that_is_not_associated(plain_moto: Any) -> None:
    world = moto_world(plain_moto)
    (assoc,) = plain_moto.describe_subnets(SubnetIds=[world.subnet_id])["Subnets"][0][
        "Ipv6CidrBlockAssociationSet"]
    assert assoc["Ipv6CidrBlockState"]["State"] != "associated"  # what the emulator fixes


def test_a_subnet_the_config_names_has_no_ipv6(ec2_emulator: Ec2Emulator) -> None:
    ec2_emulator.set_config(ipv4_only_subnets=("10.0.64.0/19",))
    world = ec2_emulator.bootstrap_vpc()
    subnets = {s["CidrBlock"]: s for s in ec2_emulator.client().describe_subnets(
        SubnetIds=list(world.subnet_ids))["Subnets"]}
    assert subnets["10.0.64.0/19"]["Ipv6CidrBlockAssociationSet"] == []
    assert len(subnets["10.0.0.0/19"]["Ipv6CidrBlockAssociationSet"]) == 1
    assert world.subnet_ipv6_cidrs[2] == ""


def test_the_config_knob_must_name_a_subnet_of_the_vpc() -> None:
    emu = Ec2Emulator(Ec2SimConfig.fast(ipv4_only_subnets=("10.9.0.0/24",)))
    try:
        emu.bootstrap_vpc()
    except ValueError as e:
        assert "10.9.0.0/24" in str(e)
    else:
        raise AssertionError("an ipv4_only_subnets entry naming no subnet was accepted")
    assert emu.backend.vpcs == {} or all(v.is_default for v in emu.backend.vpcs.values())


def test_a_primary_eni_in_a_dual_stack_subnet_gets_one_ipv6_address(
    ec2_emulator: Ec2Emulator,
) -> None:
    ec2_emulator.set_config(ipv4_only_subnets=("10.0.64.0/19",))
    world = ec2_emulator.bootstrap_vpc()
    ec2 = ec2_emulator.client()
    dual = primary_eni(ec2, ec2_emulator.run_instance("m5.large", world.subnet_ids[0]))
    (ip6,) = ipv6s_of(describe_eni(ec2, dual))
    assert ipaddress.IPv6Address(ip6) in ipaddress.IPv6Network(world.subnet_ipv6_cidrs[0])
    v4_only = primary_eni(ec2, ec2_emulator.run_instance("m5.large", world.subnet_ids[2]))
    assert ipv6s_of(describe_eni(ec2, v4_only)) == []
    # and two instances never share one
    other = primary_eni(ec2, ec2_emulator.run_instance("m5.large", world.subnet_ids[0]))
    assert ipv6s_of(describe_eni(ec2, other)) != [ip6]


def test_plain_moto_gives_a_launched_instance_no_ipv6(plain_moto: Any) -> None:
    world = moto_world(plain_moto)
    eni = primary_eni(plain_moto, run_in(plain_moto, world.subnet_id))
    assert ipv6s_of(describe_eni(plain_moto, eni)) == []


def test_describe_instance_types_gives_the_ipv6_limits(
    ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    types = ec2_emulator.client().describe_instance_types(
        InstanceTypes=["m5.large", "t3.nano"])["InstanceTypes"]
    net = {t["InstanceType"]: t["NetworkInfo"] for t in types}
    assert net["m5.large"]["Ipv6AddressesPerInterface"] == 10
    assert net["t3.nano"]["Ipv6AddressesPerInterface"] == 2
    assert net["m5.large"]["Ipv6Supported"] is True
