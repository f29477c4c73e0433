"""Fault injection (5xx rate, named error for a named action, lost responses) and latency."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from vpcnet_sim.ec2 import Ec2Emulator, FaultRule, Latency, World


def outcome(call: Any) -> str:
    try:
        call()
        return "ok"
    except ClientError as e:
        return str(e.response["Error"]["Code"])


def test_5xx_rate(ec2_emulator: Ec2Emulator) -> None:
    ec2 = ec2_emulator.client()
    ec2_emulator.set_faults(rate_5xx=1.0)
    statuses = set()
    for _ in range(10):
        with pytest.raises(ClientError) as exc:
            ec2.describe_vpcs()
        code = exc.value.response["Error"]["Code"]
        status = exc.value.response["ResponseMetadata"]["HTTPStatusCode"]
        assert (code, status) in {("InternalError", 500), ("ServiceUnavailable", 503)}
        statuses.add(status)
    ec2_emulator.set_faults()  # cleared
    ec2.describe_vpcs()
    assert sum(ec2_emulator.counters()["errors"]["DescribeVpcs"].values()) == 10


def test_named_error_for_named_action_next_n_calls(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.large")
    eni = ec2.create_network_interface(SubnetId=ec2_world.subnet_id)["NetworkInterface"]["NetworkInterfaceId"]
    ec2_emulator.set_faults(rules=[FaultRule("AttachNetworkInterface", "InternalError", count=2)])

    def attach() -> Any:
        return ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=iid, DeviceIndex=1)

    assert outcome(ec2.describe_vpcs) == "ok"  # other actions unaffected
    assert [outcome(attach), outcome(attach), outcome(attach)] == ["InternalError", "InternalError", "ok"]
    c = ec2_emulator.counters()
    assert c["calls"]["AttachNetworkInterface"] == 3
    assert c["errors"]["AttachNetworkInterface"] == {"InternalError": 2}


def test_sdk_retries_ride_over_injected_5xx(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client(max_attempts=3)
    ec2_emulator.set_faults(rules=[{"action": "CreateNetworkInterface", "code": "ServiceUnavailable", "count": 2}])
    ec2.create_network_interface(SubnetId=ec2_world.subnet_id)
    assert ec2_emulator.counters()["calls"]["CreateNetworkInterface"] == 3


def test_named_error_at_a_rate(ec2_emulator: Ec2Emulator) -> None:
    ec2 = ec2_emulator.client()
    ec2_emulator.set_config(throttle=False)
    ec2_emulator.set_faults(rules=[FaultRule("DescribeVpcs", "Unavailable", rate=0.5)])
    results = [outcome(ec2.describe_vpcs) for _ in range(100)]
    failed = results.count("Unavailable")
    assert 20 <= failed <= 80 and failed + results.count("ok") == 100


def test_lost_response_then_client_token_retry(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    """The call takes effect but the caller sees a 500: a retry with the same token must
    return the same ENI instead of leaking a second one."""
    ec2 = ec2_emulator.client()
    ec2_emulator.set_faults(rules=[FaultRule("CreateNetworkInterface", "InternalError", count=1, after=True)])
    with pytest.raises(ClientError):
        ec2.create_network_interface(SubnetId=ec2_world.subnet_id, ClientToken="tok-1")
    leaked = ec2.describe_network_interfaces()["NetworkInterfaces"]
    assert len(leaked) == 1
    retry = ec2.create_network_interface(SubnetId=ec2_world.subnet_id, ClientToken="tok-1")
    assert retry["NetworkInterface"]["NetworkInterfaceId"] == leaked[0]["NetworkInterfaceId"]
    assert len(ec2.describe_network_interfaces()["NetworkInterfaces"]) == 1


def test_latency_sleeps_outside_the_backend_lock(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    """A slow call must not hold up others: while one CreateNetworkInterface is in its
    (long) latency, other calls complete."""
    ec2_emulator.set_config(latency={"CreateNetworkInterface": Latency(2.0)})
    slow_client = ec2_emulator.client()
    done = threading.Event()

    def slow() -> None:
        slow_client.create_network_interface(SubnetId=ec2_world.subnet_id)
        done.set()

    t = threading.Thread(target=slow)
    t.start()
    ec2 = ec2_emulator.client()
    while ec2_emulator.counters()["calls"].get("CreateNetworkInterface", 0) == 0:
        threading.Event().wait(0.01)
    ec2.describe_vpcs()
    ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [ec2_world.vpc_id]}])
    assert not done.is_set()  # the slow call is still sleeping, yet the others completed
    t.join(timeout=30)
    assert done.is_set()


def test_presets() -> None:
    from vpcnet_sim.ec2 import Ec2SimConfig

    aws = Ec2SimConfig.aws_like()
    assert aws.latency_for("CreateNetworkInterface").seconds == 0.3
    assert aws.latency_for("DescribeNetworkInterfaces").seconds == 0.1
    assert aws.attach_delay == 2.0
    fast = Ec2SimConfig.fast()
    assert fast.latency_for("CreateNetworkInterface").seconds == 0.0 and fast.attach_delay == 0.0
