"""Every AWS rule the EC2 emulator enforces, through boto3 over HTTP, with the exact code."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from botocore.exceptions import ClientError

from vpcnet_sim.ec2 import Ec2Emulator, World


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def new_eni(ec2: Any, world: World, subnet: int = 0, **kw: Any) -> dict[str, Any]:
    eni: dict[str, Any] = ec2.create_network_interface(
        SubnetId=world.subnet_ids[subnet], Groups=[world.security_group_id], **kw
    )["NetworkInterface"]
    return eni


def describe_eni(ec2: Any, eni_id: str) -> dict[str, Any]:
    out: dict[str, Any] = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])[
        "NetworkInterfaces"
    ][0]
    return out


def ips_of(eni: dict[str, Any]) -> list[str]:
    return [a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"]]


def test_attach_beyond_instance_type_eni_limit(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("t3.nano")  # 2 ENIs
    ec2.attach_network_interface(
        NetworkInterfaceId=new_eni(ec2, ec2_world)["NetworkInterfaceId"], InstanceId=iid, DeviceIndex=1
    )
    third = new_eni(ec2, ec2_world)["NetworkInterfaceId"]
    with pytest.raises(ClientError) as exc:
        ec2.attach_network_interface(NetworkInterfaceId=third, InstanceId=iid, DeviceIndex=2)
    assert code_of(exc) == "AttachmentLimitExceeded"
    assert "exceeds the limit for t3.nano" in exc.value.response["Error"]["Message"]
    assert describe_eni(ec2, third)["Status"] == "available"


def test_ip_limit_counts_prefixes(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.large")  # 10 IPv4 per ENI
    eni = new_eni(ec2, ec2_world, SecondaryPrivateIpAddressCount=5)["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=iid, DeviceIndex=1)
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, Ipv4PrefixCount=4)  # 1+5+4 = 10
    with pytest.raises(ClientError) as exc:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, SecondaryPrivateIpAddressCount=1)
    assert code_of(exc) == "PrivateIpAddressLimitExceeded"
    with pytest.raises(ClientError) as exc:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, Ipv4PrefixCount=1)
    assert code_of(exc) == "PrivateIpAddressLimitExceeded"
    got = describe_eni(ec2, eni)
    assert len(got["PrivateIpAddresses"]) == 6 and len(got["Ipv4Prefixes"]) == 4


def test_attach_eni_holding_more_ips_than_the_type_allows(
    ec2_emulator: Ec2Emulator, ec2_world: World
) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.large")
    big = new_eni(ec2, ec2_world, SecondaryPrivateIpAddressCount=12)["NetworkInterfaceId"]
    with pytest.raises(ClientError) as exc:
        ec2.attach_network_interface(NetworkInterfaceId=big, InstanceId=iid, DeviceIndex=1)
    assert code_of(exc) == "PrivateIpAddressLimitExceeded"


def test_create_beyond_any_per_eni_limit(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    with pytest.raises(ClientError) as exc:
        new_eni(ec2, ec2_world, SecondaryPrivateIpAddressCount=200)
    assert code_of(exc) == "PrivateIpAddressLimitExceeded"
    assert ec2.describe_network_interfaces()["NetworkInterfaces"] == []


def test_secondary_ips_unique_never_reserved_and_exhaustion(ec2_emulator: Ec2Emulator) -> None:
    ec2 = ec2_emulator.client()
    world = ec2_emulator.bootstrap_vpc(cidr="10.9.0.0/16", subnets=("10.9.0.0/27",), azs=("us-east-1a",))
    net = ipaddress.IPv4Network("10.9.0.0/27")  # 32 addresses, 27 usable
    seen: list[str] = []
    for _ in range(3):  # 3 ENIs x (1 + 8) = 27
        seen += ips_of(new_eni(ec2, world, SecondaryPrivateIpAddressCount=8))
    assert len(seen) == len(set(seen)) == 27
    reserved = {str(net.network_address + i) for i in range(4)} | {str(net.broadcast_address)}
    assert not reserved & set(seen)
    subnet = ec2.describe_subnets(SubnetIds=[world.subnet_id])["Subnets"][0]
    assert subnet["AvailableIpAddressCount"] == 0
    with pytest.raises(ClientError) as exc:
        new_eni(ec2, world)
    assert code_of(exc) == "InsufficientFreeAddressesInSubnet"
    eni = ec2.describe_network_interfaces()["NetworkInterfaces"][0]["NetworkInterfaceId"]
    with pytest.raises(ClientError) as exc:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, SecondaryPrivateIpAddressCount=1)
    assert code_of(exc) == "InsufficientFreeAddressesInSubnet"
    subnet = ec2.describe_subnets(SubnetIds=[world.subnet_id])["Subnets"][0]
    assert subnet["AvailableIpAddressCount"] == 0  # never negative


def test_free_count_follows_assign_and_unassign(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()

    def free() -> int:
        return int(ec2.describe_subnets(SubnetIds=[ec2_world.subnet_id])["Subnets"][0]["AvailableIpAddressCount"])

    start = free()
    eni = new_eni(ec2, ec2_world, SecondaryPrivateIpAddressCount=2)
    assert free() == start - 3
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni["NetworkInterfaceId"], Ipv4PrefixCount=1)
    assert free() == start - 3 - 16
    ec2.unassign_private_ip_addresses(
        NetworkInterfaceId=eni["NetworkInterfaceId"], PrivateIpAddresses=ips_of(eni)[1:2]
    )
    assert free() == start - 2 - 16
    ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
    assert free() == start


def test_explicit_ip_in_use_or_reserved(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    a = new_eni(ec2, ec2_world, SecondaryPrivateIpAddressCount=1)
    b = new_eni(ec2, ec2_world)["NetworkInterfaceId"]
    taken = ips_of(a)[1]
    with pytest.raises(ClientError) as exc:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=b, PrivateIpAddresses=[taken])
    assert code_of(exc) == "InvalidIPAddress.InUse"
    with pytest.raises(ClientError) as exc:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=b, PrivateIpAddresses=["10.0.0.2"])
    assert code_of(exc) == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:
        new_eni(ec2, ec2_world, PrivateIpAddress=taken)
    assert code_of(exc) == "InvalidIPAddress.InUse"
    # AllowReassignment moves a secondary address between ENIs, as EC2 does.
    ec2.assign_private_ip_addresses(NetworkInterfaceId=b, PrivateIpAddresses=[taken], AllowReassignment=True)
    assert taken in ips_of(describe_eni(ec2, b))
    assert taken not in ips_of(describe_eni(ec2, a["NetworkInterfaceId"]))


def test_unassign_rules(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    eni = new_eni(ec2, ec2_world, SecondaryPrivateIpAddressCount=1)
    eid = eni["NetworkInterfaceId"]
    with pytest.raises(ClientError) as exc:
        ec2.unassign_private_ip_addresses(NetworkInterfaceId=eid, PrivateIpAddresses=[ips_of(eni)[0]])
    assert code_of(exc) == "InvalidParameterValue"  # the primary never goes
    with pytest.raises(ClientError) as exc:
        ec2.unassign_private_ip_addresses(NetworkInterfaceId=eid, PrivateIpAddresses=["10.0.31.200"])
    assert code_of(exc) == "InvalidParameterValue"
    assert ips_of(describe_eni(ec2, eid)) == ips_of(eni)


def test_client_token_idempotency(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    first = new_eni(ec2, ec2_world, ClientToken="node-a-eni-1", Description="x")
    again = new_eni(ec2, ec2_world, ClientToken="node-a-eni-1", Description="x")
    assert again["NetworkInterfaceId"] == first["NetworkInterfaceId"]
    with pytest.raises(ClientError) as exc:
        new_eni(ec2, ec2_world, ClientToken="node-a-eni-1", Description="other")
    assert code_of(exc) == "IdempotentParameterMismatch"
    assert len(ec2.describe_network_interfaces()["NetworkInterfaces"]) == 1
    other = new_eni(ec2, ec2_world, ClientToken="node-a-eni-2", Description="x")
    assert other["NetworkInterfaceId"] != first["NetworkInterfaceId"]


def test_device_index_in_use(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.xlarge")
    ec2.attach_network_interface(NetworkInterfaceId=new_eni(ec2, ec2_world)["NetworkInterfaceId"], InstanceId=iid, DeviceIndex=1)
    with pytest.raises(ClientError) as exc:
        ec2.attach_network_interface(
            NetworkInterfaceId=new_eni(ec2, ec2_world)["NetworkInterfaceId"], InstanceId=iid, DeviceIndex=1
        )
    assert code_of(exc) == "InvalidParameterValue"
    assert "already has an interface attached at device index '1'" in exc.value.response["Error"]["Message"]


def test_attach_eni_attached_elsewhere(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    a = ec2_emulator.run_instance("m5.large")
    b = ec2_emulator.run_instance("m5.large")
    eni = new_eni(ec2, ec2_world)["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=a, DeviceIndex=1)
    with pytest.raises(ClientError) as exc:
        ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=b, DeviceIndex=1)
    assert code_of(exc) == "InvalidNetworkInterface.InUse"
    assert describe_eni(ec2, eni)["Attachment"]["InstanceId"] == a


def test_attached_eni_keeps_its_own_security_groups(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.large")  # launched with the world's group
    other = ec2.create_security_group(GroupName="pods", Description="pods", VpcId=ec2_world.vpc_id)["GroupId"]
    eni = new_eni(ec2, ec2_world)["NetworkInterfaceId"]
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=[other])
    ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=iid, DeviceIndex=1)
    assert [g["GroupId"] for g in describe_eni(ec2, eni)["Groups"]] == [other]


def test_attach_across_availability_zones(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.large", subnet_id=ec2_world.subnet_ids[0])
    eni = new_eni(ec2, ec2_world, subnet=1)["NetworkInterfaceId"]  # another AZ
    with pytest.raises(ClientError) as exc:
        ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=iid, DeviceIndex=1)
    assert code_of(exc) == "InvalidParameterCombination"


def test_delete_attached_eni_then_detach_and_delete(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.large")
    eni = new_eni(ec2, ec2_world)["NetworkInterfaceId"]
    att = ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=iid, DeviceIndex=1)
    with pytest.raises(ClientError) as exc:
        ec2.delete_network_interface(NetworkInterfaceId=eni)
    assert code_of(exc) == "InvalidNetworkInterface.InUse"
    ec2.detach_network_interface(AttachmentId=att["AttachmentId"])
    ec2.delete_network_interface(NetworkInterfaceId=eni)
    with pytest.raises(ClientError) as exc:
        ec2.delete_network_interface(NetworkInterfaceId=eni)
    assert code_of(exc) == "InvalidNetworkInterfaceID.NotFound"
    with pytest.raises(ClientError) as exc:
        ec2.delete_network_interface(NetworkInterfaceId="not-an-eni")
    assert code_of(exc) == "InvalidNetworkInterfaceID.Malformed"


def test_primary_eni_cannot_be_detached(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.large")
    primary = ec2_emulator.instance_view(iid)["enis"][0]
    with pytest.raises(ClientError) as exc:
        ec2.detach_network_interface(AttachmentId=primary["attachment_id"])
    assert code_of(exc) == "OperationNotPermitted"
    with pytest.raises(ClientError) as exc:
        ec2.detach_network_interface(AttachmentId="eni-attach-0000000000000000")
    assert code_of(exc) == "InvalidAttachmentID.NotFound"


def test_delete_on_termination_set_by_modify_is_honoured(
    ec2_emulator: Ec2Emulator, ec2_world: World
) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.xlarge")
    primary = ec2_emulator.instance_view(iid)["enis"][0]["eni_id"]
    keep = new_eni(ec2, ec2_world)["NetworkInterfaceId"]
    drop = new_eni(ec2, ec2_world)["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=keep, InstanceId=iid, DeviceIndex=1)
    att = ec2.attach_network_interface(NetworkInterfaceId=drop, InstanceId=iid, DeviceIndex=2)
    assert describe_eni(ec2, drop)["Attachment"]["DeleteOnTermination"] is False
    with pytest.raises(ClientError) as exc:
        ec2.modify_network_interface_attribute(
            NetworkInterfaceId=drop,
            Attachment={"AttachmentId": "eni-attach-0000000000000000", "DeleteOnTermination": True},
        )
    assert code_of(exc) == "InvalidAttachmentID.NotFound"
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=drop, Attachment={"AttachmentId": att["AttachmentId"], "DeleteOnTermination": True}
    )
    assert describe_eni(ec2, drop)["Attachment"]["DeleteOnTermination"] is True
    ec2.terminate_instances(InstanceIds=[iid])
    remaining = {e["NetworkInterfaceId"]: e for e in ec2.describe_network_interfaces()["NetworkInterfaces"]}
    assert set(remaining) == {keep}  # primary (default DoT) and the modified one are gone
    assert remaining[keep]["Status"] == "available" and "Attachment" not in remaining[keep]
    assert primary not in remaining
    state = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] == "terminated"


def test_modify_one_attribute_at_a_time(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    eni = new_eni(ec2, ec2_world)["NetworkInterfaceId"]
    with pytest.raises(ClientError) as exc:
        ec2.modify_network_interface_attribute(
            NetworkInterfaceId=eni, Description={"Value": "d"}, SourceDestCheck={"Value": False}
        )
    assert code_of(exc) == "InvalidParameterCombination"
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, SourceDestCheck={"Value": False})
    assert describe_eni(ec2, eni)["SourceDestCheck"] is False


def test_prefix_delegation(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.xlarge")
    eni = new_eni(ec2, ec2_world, SecondaryPrivateIpAddressCount=3, Ipv4PrefixCount=2)
    eid = eni["NetworkInterfaceId"]
    prefixes = [ipaddress.IPv4Network(p["Ipv4Prefix"]) for p in eni["Ipv4Prefixes"]]
    assert len(prefixes) == 2 and all(p.prefixlen == 28 for p in prefixes)  # strict => aligned
    ec2.attach_network_interface(NetworkInterfaceId=eid, InstanceId=iid, DeviceIndex=1)
    out = ec2.assign_private_ip_addresses(NetworkInterfaceId=eid, Ipv4Prefixes=["10.0.8.16/28"])
    assert out["AssignedIpv4Prefixes"] == [{"Ipv4Prefix": "10.0.8.16/28"}]
    out = ec2.assign_private_ip_addresses(NetworkInterfaceId=eid, Ipv4PrefixCount=1)
    prefixes += [ipaddress.IPv4Network("10.0.8.16/28"), ipaddress.IPv4Network(out["AssignedIpv4Prefixes"][0]["Ipv4Prefix"])]
    # no prefix overlaps another prefix or any individually assigned IP of the subnet
    all_ips = [ipaddress.IPv4Address(ip) for e in ec2.describe_network_interfaces()["NetworkInterfaces"] for ip in ips_of(e)]
    for i, p in enumerate(prefixes):
        assert not any(ip in p for ip in all_ips)
        assert not any(p.overlaps(q) for q in prefixes[i + 1 :])
    shown = describe_eni(ec2, eid)
    assert sorted(p["Ipv4Prefix"] for p in shown["Ipv4Prefixes"]) == sorted(str(p) for p in prefixes)
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    via_instance = {n["NetworkInterfaceId"]: n for n in inst["NetworkInterfaces"]}[eid]
    assert len(via_instance["Ipv4Prefixes"]) == 4
    with pytest.raises(ClientError) as exc:  # misaligned
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eid, Ipv4Prefixes=["10.0.9.8/28"])
    assert code_of(exc) == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:  # already delegated
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eid, Ipv4Prefixes=["10.0.8.16/28"])
    assert code_of(exc) == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:  # an IP inside a delegated prefix
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eid, PrivateIpAddresses=["10.0.8.20"])
    assert code_of(exc) == "InvalidIPAddress.InUse"
    ec2.unassign_private_ip_addresses(NetworkInterfaceId=eid, Ipv4Prefixes=["10.0.8.16/28"])
    assert "10.0.8.16/28" not in [p["Ipv4Prefix"] for p in describe_eni(ec2, eid)["Ipv4Prefixes"]]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eid, PrivateIpAddresses=["10.0.8.20"])


def test_prefixes_only_on_nitro(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m4.large")  # Xen
    eni = new_eni(ec2, ec2_world)["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=iid, DeviceIndex=1)
    with pytest.raises(ClientError) as exc:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, Ipv4PrefixCount=1)
    assert code_of(exc) == "InvalidParameterValue"
    with_prefix = new_eni(ec2, ec2_world, Ipv4PrefixCount=1)["NetworkInterfaceId"]
    other = ec2_emulator.run_instance("m4.large")
    with pytest.raises(ClientError) as exc:
        ec2.attach_network_interface(NetworkInterfaceId=with_prefix, InstanceId=other, DeviceIndex=1)
    assert code_of(exc) == "InvalidParameterValue"


def test_fragmented_subnet_has_no_cidr_block(ec2_emulator: Ec2Emulator) -> None:
    ec2 = ec2_emulator.client()
    world = ec2_emulator.bootstrap_vpc(cidr="10.8.0.0/16", subnets=("10.8.0.0/26",), azs=("us-east-1a",))
    # /26 = four /28s; the first and last hold reserved addresses, so two can be delegated.
    # One address in each of the middle two leaves 57 free addresses and no free /28.
    new_eni(ec2, world, PrivateIpAddress="10.8.0.20")
    new_eni(ec2, world, PrivateIpAddress="10.8.0.40")
    eni = ec2.describe_network_interfaces()["NetworkInterfaces"][0]["NetworkInterfaceId"]
    with pytest.raises(ClientError) as exc:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, Ipv4PrefixCount=1)
    assert code_of(exc) == "InsufficientCidrBlocks"


def test_attachment_goes_attaching_then_attached(ec2_emulator_clocked: Ec2Emulator, fake_clock: Any) -> None:
    emu = ec2_emulator_clocked
    emu.set_config(attach_delay=2.0, detach_delay=1.0)
    world = emu.bootstrap_vpc()
    ec2 = emu.client()
    iid = emu.run_instance("m5.large")
    eni = new_eni(ec2, world)["NetworkInterfaceId"]
    att = ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=iid, DeviceIndex=1)
    got = describe_eni(ec2, eni)
    assert (got["Status"], got["Attachment"]["Status"]) == ("in-use", "attaching")
    filtered = ec2.describe_network_interfaces(Filters=[{"Name": "attachment.status", "Values": ["attaching"]}])
    assert [e["NetworkInterfaceId"] for e in filtered["NetworkInterfaces"]] == [eni]
    fake_clock.advance(2.0)
    assert describe_eni(ec2, eni)["Attachment"]["Status"] == "attached"
    ec2.detach_network_interface(AttachmentId=att["AttachmentId"])
    assert describe_eni(ec2, eni)["Attachment"]["Status"] == "detaching"
    with pytest.raises(ClientError) as exc:
        ec2.delete_network_interface(NetworkInterfaceId=eni)
    assert code_of(exc) == "InvalidNetworkInterface.InUse"
    fake_clock.advance(1.0)
    got = describe_eni(ec2, eni)
    assert got["Status"] == "available" and "Attachment" not in got
    ec2.delete_network_interface(NetworkInterfaceId=eni)


def test_describe_instance_types_limits(ec2_emulator: Ec2Emulator) -> None:
    ec2 = ec2_emulator.client()
    want = {"t3.nano": (2, 2, "nitro"), "m5.large": (3, 10, "nitro"), "m5.xlarge": (4, 15, "nitro"),
            "c5.18xlarge": (15, 50, "nitro"), "m4.large": (2, 10, "xen")}
    got = ec2.describe_instance_types(InstanceTypes=list(want))["InstanceTypes"]
    seen = {
        t["InstanceType"]: (t["NetworkInfo"]["MaximumNetworkInterfaces"], t["NetworkInfo"]["Ipv4AddressesPerInterface"], t["Hypervisor"])
        for t in got
    }
    assert seen == want
    # enforcement reads the same numbers: a c5.18xlarge takes 15 ENIs, not 16
    world = ec2_emulator.bootstrap_vpc(cidr="10.7.0.0/16", subnets=("10.7.0.0/24",))
    iid = ec2_emulator.run_instance("c5.18xlarge", subnet_id=world.subnet_id)
    for idx in range(1, 15):
        ec2.attach_network_interface(NetworkInterfaceId=new_eni(ec2, world)["NetworkInterfaceId"], InstanceId=iid, DeviceIndex=idx)
    with pytest.raises(ClientError) as exc:
        ec2.attach_network_interface(NetworkInterfaceId=new_eni(ec2, world)["NetworkInterfaceId"], InstanceId=iid, DeviceIndex=15)
    assert code_of(exc) == "AttachmentLimitExceeded"
