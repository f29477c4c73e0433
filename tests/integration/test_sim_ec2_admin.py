"""The /_sim/ admin API and the standalone ``vpcnet sim ec2`` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import boto3

from vpcnet_sim.ec2 import Ec2Emulator, World


def call(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    # no Content-Type on purpose: urllib then says form-urlencoded, as curl -d does
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + "/_sim/" + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return int(e.code), json.loads(e.read())


def test_admin_api(ec2_emulator: Ec2Emulator) -> None:
    base = ec2_emulator.endpoint_url
    assert call(base, "GET", "health")[1]["ok"] is True
    status, world = call(base, "POST", "bootstrap", {"cidr": "10.5.0.0/16", "subnets": ["10.5.0.0/24"], "azs": ["us-east-1b"]})
    assert status == 200 and world["subnet_cidrs"] == ["10.5.0.0/24"]
    status, inst = call(base, "POST", "instances", {"instance_type": "t3.nano", "subnet_id": world["subnet_ids"][0], "name": "n1"})
    assert status == 200 and inst["name"] == "n1" and inst["limits"] == {"max_enis": 2, "ipv4_per_eni": 2, "hypervisor": "nitro"}
    eni0 = inst["enis"][0]
    assert (eni0["device_index"], eni0["status"], eni0["subnet_cidr"]) == (0, "attached", "10.5.0.0/24")
    assert eni0["primary_ip"] == inst["private_ip"]
    assert [i["instance_id"] for i in call(base, "GET", "instances")[1]] == [inst["instance_id"]]
    ec2 = ec2_emulator.client()
    ec2.describe_vpcs()
    assert call(base, "GET", "counters")[1]["calls"] == {"DescribeVpcs": 1}
    assert call(base, "POST", "counters/reset")[1]["calls"] == {}
    status, faults = call(base, "POST", "faults", {"rate_5xx": 0.0, "rules": [{"action": "DescribeVpcs", "code": "InternalError", "count": 1}]})
    assert status == 200 and faults["rules"][0]["remaining"] == 1
    status, cfg = call(base, "POST", "config", {"latency": "aws", "throttle": False, "attach_delay": 0})
    assert cfg["preset"] == "aws" and cfg["throttle"] is False and cfg["attach_delay"] == 0
    assert ec2_emulator.config.latency_for("CreateNetworkInterface").seconds == 0.3
    status, gone = call(base, "DELETE", f"instances/{inst['instance_id']}")
    assert status == 200 and gone["state"] == "terminated" and gone["enis"] == []
    assert call(base, "GET", "nope")[0] == 404
    assert call(base, "POST", "instances", {"instance_type": "x9.huge"})[0] == 400
    # none of this was counted as EC2 traffic
    assert call(base, "GET", "counters")[1]["calls"] == {}


def test_instance_view_matches_describe(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.large")
    eni = ec2.create_network_interface(SubnetId=ec2_world.subnet_id, SecondaryPrivateIpAddressCount=2, Ipv4PrefixCount=1)["NetworkInterface"]
    ec2.attach_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=iid, DeviceIndex=1)
    view = ec2_emulator.instance_view(iid)["enis"][1]
    described = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"][0]
    assert view["mac"] == described["MacAddress"]
    assert [view["primary_ip"], *view["secondary_ips"]] == [a["PrivateIpAddress"] for a in described["PrivateIpAddresses"]]
    assert view["prefixes"] == [p["Ipv4Prefix"] for p in described["Ipv4Prefixes"]]
    assert (view["device_index"], view["status"]) == (1, "attached")


def test_cli_runs_standalone_until_sigterm(tmp_path: Any) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vpcnet.cli.main", "sim", "ec2", "--port", "0", "--bootstrap", "--latency", "fast"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        info = json.loads(line)
        world = info["world"]
        assert world["vpc_id"].startswith("vpc-") and len(world["subnet_ids"]) == 3
        ec2 = boto3.client("ec2", endpoint_url=info["endpoint_url"], region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        subnets = ec2.describe_subnets(SubnetIds=world["subnet_ids"])["Subnets"]
        assert {s["SubnetId"] for s in subnets} == set(world["subnet_ids"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
