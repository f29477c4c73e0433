"""The emulator's instance metadata and admin API with IPv6: per MAC ``ipv6s``,
``ipv6-prefix``, ``subnet-ipv6-cidr-blocks``, ``vpc-ipv6-cidr-blocks``, read through
the agent's own IMDS client; the admin dump the simulated VPC fabric reads."""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.integration.ipv6_support import describe_eni, ipv6s_of, primary_eni
from vpcnet.agent.imds import ImdsClient
from vpcnet_sim.ec2 import Ec2Emulator, World


@pytest.fixture
def v4_world(ec2_emulator: Ec2Emulator) -> World:
    ec2_emulator.set_config(ipv4_only_subnets=("10.0.64.0/19",))
    return ec2_emulator.bootstrap_vpc()


def admin(emu: Ec2Emulator, path: str) -> Any:
    with urllib.request.urlopen(f"{emu.endpoint_url}/_sim/{path}", timeout=5) as resp:
        return json.loads(resp.read())


def raw_imds(emu: Ec2Emulator, iid: str, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{emu.imds_url(iid)}/latest/meta-data/{path}",
                                    timeout=5) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), ""


def test_imds_serves_the_ipv6_keys_of_each_mac(ec2_emulator: Ec2Emulator, v4_world: World) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.large", v4_world.subnet_ids[0])
    eni = primary_eni(ec2, iid)
    prefixes = ec2.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6PrefixCount=2)[
        "AssignedIpv6Prefixes"]
    (own,) = ipv6s_of(describe_eni(ec2, eni))
    imds = ImdsClient(ec2_emulator.imds_url(iid))
    (iface,) = imds.interfaces().values()
    assert iface.ipv6s == (ipaddress.IPv6Address(own),)
    assert iface.ipv6_prefixes == tuple(ipaddress.IPv6Network(p) for p in prefixes)
    assert iface.subnet_ipv6_cidr == ipaddress.IPv6Network(v4_world.subnet_ipv6_cidrs[0])
    mac = iface.mac
    assert raw_imds(ec2_emulator, iid, f"network/interfaces/macs/{mac}/vpc-ipv6-cidr-blocks") == (
        200, v4_world.vpc_ipv6_cidr)
    listing = raw_imds(ec2_emulator, iid, f"network/interfaces/macs/{mac}/")[1].splitlines()
    for key in ("ipv6s", "ipv6-prefix", "subnet-ipv6-cidr-blocks", "vpc-ipv6-cidr-blocks"):
        assert key in listing
    assert listing == sorted(listing)


def test_an_eni_without_ipv6_has_no_ipv6_keys(ec2_emulator: Ec2Emulator, v4_world: World) -> None:
    iid = ec2_emulator.run_instance("m5.large", v4_world.subnet_ids[2])  # IPv4-only subnet
    (iface,) = ImdsClient(ec2_emulator.imds_url(iid)).interfaces().values()
    assert iface.ipv6s == () and iface.ipv6_prefixes == () and iface.subnet_ipv6_cidr is None
    for key in ("ipv6s", "ipv6-prefix", "subnet-ipv6-cidr-blocks"):
        assert raw_imds(ec2_emulator, iid, f"network/interfaces/macs/{iface.mac}/{key}")[0] == 404
    # the VPC itself has its /56, which IMDS names even for an IPv4-only subnet's ENI
    assert raw_imds(ec2_emulator, iid,
                    f"network/interfaces/macs/{iface.mac}/vpc-ipv6-cidr-blocks")[1] == (
        v4_world.vpc_ipv6_cidr)


def test_admin_lists_ipv6_of_each_eni_and_subnet(ec2_emulator: Ec2Emulator, v4_world: World) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.large", v4_world.subnet_ids[0])
    eni = primary_eni(ec2, iid)
    prefixes = ec2.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6PrefixCount=1)[
        "AssignedIpv6Prefixes"]
    (view,) = [i for i in admin(ec2_emulator, "instances") if i["instance_id"] == iid]
    (nic,) = view["enis"]
    assert nic["ipv6_prefixes"] == prefixes
    assert nic["ipv6_addresses"] == ipv6s_of(describe_eni(ec2, eni))
    assert nic["subnet_ipv6_cidr"] == v4_world.subnet_ipv6_cidrs[0]
    assert nic["vpc_ipv6_cidrs"] == [v4_world.vpc_ipv6_cidr]
    v4_iid = ec2_emulator.run_instance("m5.large", v4_world.subnet_ids[2])
    (v4_nic,) = admin(ec2_emulator, f"instances/{v4_iid}")["enis"]
    assert v4_nic["subnet_ipv6_cidr"] is None
    assert v4_nic["ipv6_addresses"] == [] and v4_nic["ipv6_prefixes"] == []
    subnets = {s["subnet_id"]: s for s in admin(ec2_emulator, "subnets")}
    assert subnets[v4_world.subnet_ids[0]]["ipv6_cidr"] == v4_world.subnet_ipv6_cidrs[0]
    assert subnets[v4_world.subnet_ids[2]]["ipv6_cidr"] is None


def test_admin_bootstrap_takes_ipv4_only_subnets(ec2_emulator: Ec2Emulator) -> None:
    body = json.dumps({"cidr": "10.5.0.0/16", "subnets": ["10.5.0.0/20", "10.5.16.0/20"],
                       "azs": ["us-east-1a"], "ipv4_only_subnets": ["10.5.16.0/20"]}).encode()
    req = urllib.request.Request(f"{ec2_emulator.endpoint_url}/_sim/bootstrap", data=body,
                                 method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        world = json.loads(resp.read())
    assert world["subnet_ipv6_cidrs"][1] == ""
    assert ipaddress.IPv6Network(world["subnet_ipv6_cidrs"][0]).prefixlen == 64
    assert ipaddress.IPv6Network(world["vpc_ipv6_cidr"]).prefixlen == 56
