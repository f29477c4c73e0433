"""DescribeNetworkInterfaces filters and MaxResults/NextToken pagination (also DescribeInstances)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any
from xml.etree import ElementTree

import pytest
from botocore.exceptions import ClientError

from vpcnet_sim.ec2 import Ec2Emulator, World


def ids(resp: dict[str, Any]) -> set[str]:
    return {e["NetworkInterfaceId"] for e in resp["NetworkInterfaces"]}


@pytest.fixture
def scene(ec2_emulator: Ec2Emulator, ec2_world: World) -> dict[str, Any]:
    """Two instances; ENIs attached, unattached, tagged, in two subnets."""
    ec2 = ec2_emulator.client()
    a = ec2_emulator.run_instance("m5.large", name="a")
    b = ec2_emulator.run_instance("m5.large", name="b")

    def eni(subnet: int = 0, **kw: Any) -> dict[str, Any]:
        out: dict[str, Any] = ec2.create_network_interface(
            SubnetId=ec2_world.subnet_ids[subnet], Groups=[ec2_world.security_group_id], **kw
        )["NetworkInterface"]
        return out

    tagged = eni(
        Description="vpcnet eni for a",
        TagSpecifications=[{"ResourceType": "network-interface", "Tags": [
            {"Key": "vpcnet.io/cluster", "Value": "c1"}, {"Key": "vpcnet.io/node", "Value": "a"}]}],
    )
    ec2.attach_network_interface(NetworkInterfaceId=tagged["NetworkInterfaceId"], InstanceId=a, DeviceIndex=1)
    loose = eni(TagSpecifications=[{"ResourceType": "network-interface", "Tags": [{"Key": "vpcnet.io/cluster", "Value": "c2"}]}])
    other_subnet = eni(subnet=1)
    prim = {iid: ec2_emulator.instance_view(iid)["enis"][0]["eni_id"] for iid in (a, b)}
    return {"ec2": ec2, "a": a, "b": b, "tagged": tagged, "loose": loose, "other": other_subnet, "prim": prim,
            "world": ec2_world}


def flt(ec2: Any, name: str, *values: str) -> set[str]:
    return ids(ec2.describe_network_interfaces(Filters=[{"Name": name, "Values": list(values)}]))


def test_filters_vpcnet_uses(scene: dict[str, Any]) -> None:
    ec2, a, world = scene["ec2"], scene["a"], scene["world"]
    tagged, loose, other = (scene[k]["NetworkInterfaceId"] for k in ("tagged", "loose", "other"))
    prim_a, prim_b = scene["prim"][a], scene["prim"][scene["b"]]
    assert flt(ec2, "network-interface-id", tagged, loose) == {tagged, loose}
    assert flt(ec2, "attachment.instance-id", a) == {prim_a, tagged}
    assert flt(ec2, "attachment.status", "attached") == {prim_a, prim_b, tagged}
    assert flt(ec2, "status", "available") == {loose, other}
    assert flt(ec2, "status", "in-use") == {prim_a, prim_b, tagged}
    assert flt(ec2, "subnet-id", world.subnet_ids[1]) == {other}
    assert flt(ec2, "vpc-id", world.vpc_id) == {prim_a, prim_b, tagged, loose, other}
    assert flt(ec2, "tag:vpcnet.io/cluster", "c1") == {tagged}
    assert flt(ec2, "tag:vpcnet.io/cluster", "c1", "c2") == {tagged, loose}
    assert flt(ec2, "tag-key", "vpcnet.io/node") == {tagged}
    assert flt(ec2, "description", "vpcnet eni*") == {tagged}  # wildcard
    assert flt(ec2, "mac-address", scene["tagged"]["MacAddress"]) == {tagged}
    assert flt(ec2, "private-ip-address", scene["loose"]["PrivateIpAddress"]) == {loose}
    assert flt(ec2, "group-id", world.security_group_id) >= {tagged, loose, other}
    assert flt(ec2, "attachment.device-index", "1") == {tagged}
    # several filters are ANDed
    both = ec2.describe_network_interfaces(Filters=[
        {"Name": "tag:vpcnet.io/cluster", "Values": ["c1", "c2"]},
        {"Name": "status", "Values": ["available"]},
    ])
    assert ids(both) == {loose}


def test_unknown_filter_is_a_client_error_not_a_500(scene: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as exc:
        scene["ec2"].describe_network_interfaces(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_network_interface_pagination(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    made = {
        ec2.create_network_interface(SubnetId=ec2_world.subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
        for _ in range(12)
    }
    pages: list[list[str]] = []
    token = None
    while True:
        kw: dict[str, Any] = {"MaxResults": 5}
        if token:
            kw["NextToken"] = token
        resp = ec2.describe_network_interfaces(**kw)
        pages.append([e["NetworkInterfaceId"] for e in resp["NetworkInterfaces"]])
        token = resp.get("NextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [5, 5, 2]
    assert {i for p in pages for i in p} == made
    paginated = ec2.get_paginator("describe_network_interfaces").paginate(PaginationConfig={"PageSize": 5})
    assert {e["NetworkInterfaceId"] for page in paginated for e in page["NetworkInterfaces"]} == made


def test_pagination_survives_deletion_between_pages(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    made = [ec2.create_network_interface(SubnetId=ec2_world.subnet_id)["NetworkInterface"]["NetworkInterfaceId"] for _ in range(10)]
    first = ec2.describe_network_interfaces(MaxResults=5)
    ec2.delete_network_interface(NetworkInterfaceId=first["NetworkInterfaces"][-1]["NetworkInterfaceId"])
    rest = ec2.describe_network_interfaces(MaxResults=5, NextToken=first["NextToken"])
    assert ids(first).isdisjoint(ids(rest))
    assert ids(first) | ids(rest) == set(made)


def test_pagination_parameter_errors(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    eni = ec2.create_network_interface(SubnetId=ec2_world.subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
    cases = [
        ({"MaxResults": 5, "NetworkInterfaceIds": [eni]}, "InvalidParameterCombination"),
        ({"MaxResults": 5, "NextToken": "%%%not-a-token"}, "InvalidPaginationToken"),
    ]
    for kwargs, code in cases:
        with pytest.raises(ClientError) as exc:
            ec2.describe_network_interfaces(**kwargs)
        assert exc.value.response["Error"]["Code"] == code, kwargs
    # boto3 refuses MaxResults < 5 itself; other clients reach the server
    status, body = raw_query(ec2_emulator, {"Action": "DescribeNetworkInterfaces", "MaxResults": "3"})
    assert status == 400 and b"<Code>InvalidParameterValue</Code>" in body


def raw_query(emu: Ec2Emulator, params: dict[str, str]) -> tuple[int, bytes]:
    data = urllib.parse.urlencode({"Version": "2016-11-15", **params}).encode()
    req = urllib.request.Request(emu.endpoint_url + "/", data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())


def test_error_envelope_is_ec2s(ec2_emulator: Ec2Emulator) -> None:
    status, body = raw_query(ec2_emulator, {"Action": "DeleteNetworkInterface", "NetworkInterfaceId": "eni-0123456789abcdef0"})
    assert status == 400
    root = ElementTree.fromstring(body)
    assert root.tag == "Response"
    assert root.findtext("Errors/Error/Code") == "InvalidNetworkInterfaceID.NotFound"
    assert "eni-0123456789abcdef0" in (root.findtext("Errors/Error/Message") or "")
    assert root.findtext("RequestID")


def test_describe_instances_pagination(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    made = {ec2_emulator.run_instance("t3.nano", name=f"n{i}") for i in range(7)}
    first = ec2.describe_instances(MaxResults=5)
    second = ec2.describe_instances(MaxResults=5, NextToken=first["NextToken"])
    assert "NextToken" not in second
    got = [i["InstanceId"] for r in first["Reservations"] + second["Reservations"] for i in r["Instances"]]
    assert len(got) == 7 and set(got) == made
    with pytest.raises(ClientError) as exc:
        ec2.describe_instances(MaxResults=5, InstanceIds=[next(iter(made))])
    assert exc.value.response["Error"]["Code"] == "InvalidParameterCombination"
    by_tag = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["n3"]}])
    assert len(by_tag["Reservations"]) == 1
