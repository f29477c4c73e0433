"""The instance metadata emulator, read with plain HTTP as an agent reads 169.254.169.254."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest

from vpcnet_sim.ec2 import Ec2Emulator, World


def fetch(url: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()


@pytest.fixture
def node(ec2_emulator: Ec2Emulator, ec2_world: World) -> dict[str, Any]:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.large", name="node-1")
    eni = ec2.create_network_interface(
        SubnetId=ec2_world.subnet_id, Groups=[ec2_world.security_group_id], SecondaryPrivateIpAddressCount=2
    )["NetworkInterface"]
    ec2.attach_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=iid, DeviceIndex=1)
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni["NetworkInterfaceId"], Ipv4PrefixCount=1)
    return {"iid": iid, "base": ec2_emulator.imds_url(iid), "eni": eni, "view": ec2_emulator.instance_view(iid)}


def test_imdsv2_token_flow(node: dict[str, Any]) -> None:
    base = node["base"]
    status, token = fetch(base + "/latest/api/token", method="PUT",
                          headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    assert status == 200 and token
    assert fetch(base + "/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token}) == (200, node["iid"])
    assert fetch(base + "/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": "bogus"})[0] == 401
    assert fetch(base + "/latest/api/token", method="PUT")[0] == 400  # TTL header required
    assert fetch(base + "/latest/meta-data/instance-id")[0] == 200  # IMDSv1 still allowed


def test_metadata_layout(node: dict[str, Any], ec2_world: World) -> None:
    base, view = node["base"] + "/latest/meta-data/", node["view"]
    primary, second = view["enis"]
    assert fetch(base + "instance-type") == (200, "m5.large")
    assert fetch(base + "local-ipv4") == (200, primary["primary_ip"])
    assert fetch(base + "mac") == (200, primary["mac"])
    assert fetch(base + "placement/availability-zone") == (200, "us-east-1a")
    status, listing = fetch(base + "network/interfaces/macs/")
    assert status == 200 and set(listing.split("\n")) == {primary["mac"] + "/", second["mac"] + "/"}
    mac = base + f"network/interfaces/macs/{second['mac']}/"
    assert fetch(mac + "device-number") == (200, "1")
    assert fetch(mac + "interface-id") == (200, second["eni_id"])
    assert fetch(mac + "subnet-id") == (200, ec2_world.subnet_id)
    assert fetch(mac + "subnet-ipv4-cidr-block") == (200, ec2_world.subnet_cidrs[0])
    assert fetch(mac + "vpc-ipv4-cidr-blocks") == (200, ec2_world.vpc_cidr)
    assert fetch(mac + "security-group-ids") == (200, ec2_world.security_group_id)
    status, ips = fetch(mac + "local-ipv4s")
    assert ips.split("\n") == [second["primary_ip"], *second["secondary_ips"]]  # primary first
    assert fetch(mac + "ipv4-prefix") == (200, second["prefixes"][0])
    # the primary ENI has no prefix, so the key does not exist (as on EC2)
    assert fetch(base + f"network/interfaces/macs/{primary['mac']}/ipv4-prefix")[0] == 404
    status, keys = fetch(mac)
    assert {"device-number", "interface-id", "local-ipv4s", "subnet-id", "ipv4-prefix"} <= set(keys.split("\n"))


def test_unknown_instance_and_path(ec2_emulator: Ec2Emulator, node: dict[str, Any]) -> None:
    assert fetch(ec2_emulator.imds_url("i-00000000000000000") + "/latest/meta-data/instance-id")[0] == 404
    assert fetch(node["base"] + "/latest/meta-data/no-such-key")[0] == 404


def test_only_attached_enis_appear(ec2_emulator_clocked: Ec2Emulator, fake_clock: Any) -> None:
    emu = ec2_emulator_clocked
    emu.set_config(attach_delay=2.0)
    world = emu.bootstrap_vpc()
    ec2 = emu.client()
    iid = emu.run_instance("m5.large")
    eni = ec2.create_network_interface(SubnetId=world.subnet_id)["NetworkInterface"]
    ec2.attach_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=iid, DeviceIndex=1)
    macs = emu.imds_url(iid) + "/latest/meta-data/network/interfaces/macs/"
    assert eni["MacAddress"] + "/" not in fetch(macs)[1].split("\n")  # still attaching
    fake_clock.advance(2.0)
    assert eni["MacAddress"] + "/" in fetch(macs)[1].split("\n")
    emu.terminate_instance(iid)
    assert fetch(macs)[0] == 404
