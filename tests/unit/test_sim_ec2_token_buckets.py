"""Token buckets and AWS's bucket table, stepped with a fake clock (exact counts)."""

from __future__ import annotations

from vpcnet.aws.buckets import Bucket
from vpcnet_sim.ec2.throttle import Throttler, aws_bucket, bucket_key


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def drain(th: Throttler, key: str, n: int) -> int:
    return sum(th.allow(key) for _ in range(n))


def test_drain_then_refill_at_rate() -> None:
    clock = Clock()
    th = Throttler(clock=clock)
    assert drain(th, "CreateNetworkInterface", 150) == 100
    clock.t += 1.0
    assert drain(th, "CreateNetworkInterface", 50) == 5
    clock.t += 0.5
    assert drain(th, "DescribeSubnets", 150) == 100  # its own bucket, still full
    clock.t += 100.0
    assert drain(th, "CreateNetworkInterface", 500) == 100  # never above capacity


def test_aws_table() -> None:
    assert aws_bucket("DescribeInstances") == Bucket(100, 20.0)
    assert aws_bucket(bucket_key("DescribeInstances", filtered=False)) == Bucket(50, 10.0)
    assert aws_bucket(bucket_key("DescribeInstances", filtered=True)) == Bucket(100, 20.0)
    assert bucket_key("DescribeSubnets", filtered=False) == "DescribeSubnets"
    for action in ("CreateNetworkInterface", "AssignPrivateIpAddresses", "ModifyNetworkInterfaceAttribute",
                   "DeleteNetworkInterface", "UnassignPrivateIpAddresses"):
        assert aws_bucket(action) == Bucket(100, 5.0)
    assert aws_bucket("AttachNetworkInterface") == Bucket(50, 5.0)
    assert aws_bucket("DetachNetworkInterface") == Bucket(50, 5.0)
    assert aws_bucket("CreateTags") == Bucket(100, 10.0)


def test_overrides_by_action_apply_to_its_variants() -> None:
    clock = Clock()
    th = Throttler({"DescribeNetworkInterfaces": Bucket(2, 1.0)}, clock=clock)
    assert drain(th, "DescribeNetworkInterfaces#unfiltered", 5) == 2
    assert drain(th, "DescribeNetworkInterfaces", 5) == 2
