"""AWS token-bucket throttling: 503 RequestLimitExceeded once a bucket is drained, refill
at the documented rate, one bucket per action. Assertions bound *counts*; the only time
used is the measured duration of a burst, to bound how much could have refilled."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from vpcnet.aws.buckets import Bucket
from vpcnet_sim.ec2 import Ec2Emulator, World

LAST_CALL_SENT = [0.0]  # monotonic time the last call of the latest burst was sent


def burst(call: Callable[[], Any], n: int, *, stop_on_throttle: bool = False) -> tuple[int, int, float]:
    """Run ``call`` n times: (successes, throttled, seconds taken)."""
    ok = throttled = 0
    start = time.monotonic()
    for _ in range(n):
        LAST_CALL_SENT[0] = time.monotonic()
        try:
            call()
            ok += 1
        except ClientError as e:
            assert e.response["Error"]["Code"] == "RequestLimitExceeded"
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            throttled += 1
            if stop_on_throttle:
                break
    return ok, throttled, time.monotonic() - start


def test_non_mutating_bucket_drains_and_refills(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()

    def describe() -> Any:
        return ec2.describe_subnets(SubnetIds=[ec2_world.subnet_id])

    # Call until the first refusal (calls outpace the refill unless one takes > 50 ms).
    ok, throttled, took = burst(describe, 600, stop_on_throttle=True)  # bucket 100, 20/s
    assert throttled == 1
    assert 100 <= ok <= 100 + 20 * took + 1
    counters = ec2_emulator.counters()
    assert counters["calls"]["DescribeSubnets"] == ok + 1
    assert counters["throttled"]["DescribeSubnets"] == 1
    assert counters["errors"]["DescribeSubnets"] == {"RequestLimitExceeded": 1}
    # other actions have their own buckets
    ec2.describe_vpcs()
    # After a pause the bucket has refilled at 20 tokens/s. It held < 1 token when the
    # refused call was decided, which was after that call was sent.
    drained_at = LAST_CALL_SENT[0]
    time.sleep(1.0)
    ok, throttled, took = burst(describe, 100, stop_on_throttle=True)
    refill_window = time.monotonic() - drained_at
    assert throttled == 1
    assert 20 <= ok <= 20 * refill_window + 1


def test_eni_mutating_bucket(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    ok, throttled, took = burst(
        lambda: ec2.create_network_interface(SubnetId=ec2_world.subnet_id), 400, stop_on_throttle=True
    )
    assert throttled == 1
    assert 100 <= ok <= 100 + 5 * took + 1  # CreateNetworkInterface: bucket 100, refill 5/s
    assert len(ec2.describe_network_interfaces(MaxResults=1000)["NetworkInterfaces"]) == ok


def test_unfiltered_describe_has_its_own_smaller_bucket(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    ec2 = ec2_emulator.client()
    ok, throttled, took = burst(ec2.describe_network_interfaces, 400, stop_on_throttle=True)
    assert throttled == 1  # unfiltered: bucket 50, refill 10/s
    assert 50 <= ok <= 50 + 10 * took + 1
    # the same action, filtered, draws from the standard bucket and still succeeds
    ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [ec2_world.vpc_id]}])
    ec2.describe_network_interfaces(MaxResults=5)


def test_throttling_can_be_switched_off_and_overridden(ec2_emulator: Ec2Emulator) -> None:
    ec2 = ec2_emulator.client()
    ec2_emulator.set_config(throttle=False)
    ok, throttled, _ = burst(ec2.describe_vpcs, 130)
    assert (ok, throttled) == (130, 0)
    ec2_emulator.set_config(throttle=True, bucket_overrides={"DescribeVpcs": Bucket(3, 0.001)})
    ok, throttled, _ = burst(ec2.describe_vpcs, 5)
    assert (ok, throttled) == (3, 2)


def test_admin_and_imds_are_never_throttled(ec2_emulator: Ec2Emulator, ec2_world: World) -> None:
    import urllib.request

    ec2_emulator.set_config(bucket_overrides={"DescribeVpcs": Bucket(1, 0.001)})
    iid = ec2_emulator.run_instance("m5.large")
    for _ in range(5):
        urllib.request.urlopen(ec2_emulator.endpoint_url + "/_sim/counters", timeout=5).read()
        urllib.request.urlopen(ec2_emulator.imds_url(iid) + "/latest/meta-data/instance-id", timeout=5).read()
    assert ec2_emulator.counters()["calls"] == {}
