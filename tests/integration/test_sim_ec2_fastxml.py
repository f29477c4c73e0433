"""The hand-written ENI XML parses (with botocore) to exactly what moto's serializer gives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.ec2.responses import SimEc2Response


@pytest.fixture
def moto_xml() -> Iterator[None]:
    SimEc2Response.fast_xml = False
    try:
        yield
    finally:
        SimEc2Response.fast_xml = True


def both(call: Any) -> tuple[Any, Any]:
    fast = call()
    SimEc2Response.fast_xml = False
    try:
        slow = call()
    finally:
        SimEc2Response.fast_xml = True
    for r in (fast, slow):
        r.pop("ResponseMetadata")
    return fast, slow


def test_fast_xml_equals_moto_serializer(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.xlarge")
    tagged = ec2.create_network_interface(
        SubnetId=ec2_world.subnet_id, Groups=[ec2_world.security_group_id], Description="a & <b>",
        SecondaryPrivateIpAddressCount=2, Ipv4PrefixCount=1,
        TagSpecifications=[{"ResourceType": "network-interface", "Tags": [{"Key": "k", "Value": "v<>"}]}],
    )["NetworkInterface"]["NetworkInterfaceId"]
    att = ec2.attach_network_interface(NetworkInterfaceId=tagged, InstanceId=iid, DeviceIndex=1)
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=tagged, Attachment={"AttachmentId": att["AttachmentId"], "DeleteOnTermination": True}
    )
    ec2.create_network_interface(SubnetId=ec2_world.subnet_ids[1])
    fast, slow = both(lambda: ec2.describe_network_interfaces())
    assert len(fast["NetworkInterfaces"]) == 3
    assert fast == slow
    fast, slow = both(lambda: ec2.describe_network_interfaces(MaxResults=5))
    assert fast == slow
    tokens = iter(["t1", "t2"])
    fast, slow = both(lambda: ec2.create_network_interface(
        SubnetId=ec2_world.subnet_id, ClientToken=next(tokens), Ipv4PrefixCount=2))
    for r in (fast, slow):
        for key in ("NetworkInterfaceId", "MacAddress", "PrivateIpAddress", "PrivateIpAddresses", "Ipv4Prefixes"):
            r["NetworkInterface"].pop(key)
        r.pop("ClientToken")
    # moto adds an empty <association/> on create (its describe path drops it, as EC2 does)
    assert slow["NetworkInterface"].pop("Association") == {}
    assert fast == slow
