"""Shared parts of the EC2 IPv6 tests: a plain moto server over HTTP (to show which
rules the emulator adds) and small boto3 helpers.

Plain moto is moto's own threaded server, with its own (process-global) backends: each
test builds its own VPC there, so tests do not see each other's resources.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

MOTO_AMI = "ami-12c6146b"


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def message_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Message"])


def boto3_ec2(endpoint_url: str) -> Any:
    return boto3.client(
        "ec2", endpoint_url=endpoint_url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture(scope="module")
def plain_moto() -> Iterator[Any]:
    """A boto3 client of plain moto (no emulator rules), over HTTP on loopback."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield boto3_ec2(f"http://{host}:{port}")
    finally:
        server.stop()


@dataclass(frozen=True, slots=True)
class MotoWorld:
    vpc_id: str
    subnet_id: str  # dual-stack: an IPv4 /20 and an IPv6 /64
    v4_subnet_id: str  # IPv4 only


def moto_world(ec2: Any) -> MotoWorld:
    """In plain moto: a VPC with an IPv6 /56, a dual-stack subnet and an IPv4-only one."""
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16", AmazonProvidedIpv6CidrBlock=True)["Vpc"]
    vpc6 = ipaddress.IPv6Network(vpc["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"])
    sub6 = next(vpc6.subnets(new_prefix=64))
    dual = ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock="10.1.0.0/20", Ipv6CidrBlock=str(sub6),
                             AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    v4 = ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock="10.1.16.0/20",
                           AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    return MotoWorld(vpc["VpcId"], dual, v4)


def run_in(ec2: Any, subnet_id: str, instance_type: str = "m5.large") -> str:
    """One instance launched with the API (for plain moto; the emulator's tests use
    ``Ec2Emulator.run_instance``, the console)."""
    res = ec2.run_instances(ImageId=MOTO_AMI, MinCount=1, MaxCount=1,
                            InstanceType=instance_type, SubnetId=subnet_id)
    return str(res["Instances"][0]["InstanceId"])


def primary_eni(ec2: Any, instance_id: str) -> str:
    inst = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return str(next(n["NetworkInterfaceId"] for n in inst["NetworkInterfaces"]
                    if n["Attachment"]["DeviceIndex"] == 0))


def describe_eni(ec2: Any, eni_id: str) -> dict[str, Any]:
    out: dict[str, Any] = ec2.describe_network_interfaces(
        NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0]
    return out


def prefixes_of(eni: dict[str, Any]) -> list[str]:
    return [p["Ipv6Prefix"] for p in eni.get("Ipv6Prefixes", ())]


def ipv6s_of(eni: dict[str, Any]) -> list[str]:
    return [a["Ipv6Address"] for a in eni.get("Ipv6Addresses", ())]
