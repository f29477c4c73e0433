"""The storm's lower bound per mode, from the minimum table and the ``aws`` preset's
shortest latencies (jitter -30 %): a lone node's chain, and the scaled clock."""

from __future__ import annotations

import pytest

from tests.unit.storm_minimums import MIN_CALLS
from vpcnet_sim.bench.storm import ec2_busy_seconds, lower_bound, one_node_chain, typical_latency
from vpcnet_sim.ec2 import Ec2SimConfig

AWS = Ec2SimConfig.aws_like()
DESCRIBE, CREATE, ATTACH, ASSIGN, ATTACHED = 0.07, 0.21, 0.21, 0.14, 2.0


@pytest.mark.parametrize("mode", ["warm", "prefix"])
def test_lone_node_in_warm_and_prefix_mode_is_describe_then_assign(mode: str) -> None:
    calls = MIN_CALLS[("m5.xlarge", mode)]
    assert one_node_chain(calls, AWS) == pytest.approx(DESCRIBE + ASSIGN)
    bound, _ = lower_bound(calls, 1, AWS)
    assert bound == pytest.approx(DESCRIBE + ASSIGN)


def test_lone_node_in_full_mode_is_its_longest_eni_chain() -> None:
    calls = MIN_CALLS[("m5.xlarge", "full")]
    assert one_node_chain(calls, AWS) == pytest.approx(DESCRIBE + CREATE + ATTACH + ATTACHED)


@pytest.mark.parametrize(("mode", "typical"), [
    ("prefix", 0.1 + 0.2),  # 1.43x the bound: no overhead at all reaches 1.2x on average
    ("full", 0.1 + 0.3 + 0.3 + 2.0),  # 1.08x: the attach delay has no jitter
])
def test_a_lone_nodes_typical_chain_is_at_the_latencies_means(mode: str, typical: float) -> None:
    calls = MIN_CALLS[("m5.xlarge", mode)]
    assert one_node_chain(calls, AWS, typical_latency) == pytest.approx(typical)


def test_many_nodes_are_bound_by_the_attach_bucket() -> None:
    calls = MIN_CALLS[("m5.xlarge", "full")]
    bound, by_action = lower_bound(calls, 1000, AWS)
    # 3,000 attaches through a bucket of 50 refilling 5/s, then the call and 'attached'.
    assert by_action["AttachNetworkInterface"] == pytest.approx((3000 - 50) / 5 + ATTACH + ATTACHED)
    assert bound == by_action["AttachNetworkInterface"]


def test_a_time_scaled_clock_scales_the_bound() -> None:
    calls = MIN_CALLS[("m5.xlarge", "prefix")]
    plain, _ = lower_bound(calls, 5000, AWS)
    fast, _ = lower_bound(calls, 5000, AWS.time_scaled(10.0))
    assert fast == pytest.approx(plain / 10)


def test_the_bound_at_a_rate_share_is_the_limiters_share_of_each_bucket() -> None:
    """``--rate-share 0.95``: vpcnet may use floor(50 * 0.95) = 47 attach tokens refilling
    4.75/s, so the bucket-bound part is (3000 - 47) / 4.75; the call and 'attached' after
    it are not affected."""
    calls = MIN_CALLS[("m5.xlarge", "full")]
    full, _ = lower_bound(calls, 1000, AWS)
    at_share, by_action = lower_bound(calls, 1000, AWS, 0.95)
    assert by_action["AttachNetworkInterface"] == pytest.approx(
        (3000 - 47) / 4.75 + ATTACH + ATTACHED)
    assert at_share == by_action["AttachNetworkInterface"]
    # The floor the full-rate ratio of a bucket-bound storm has at this share.
    assert at_share / full == pytest.approx(1 / 0.95, abs=0.002)
    # A share of 1 is AWS's full buckets.
    assert lower_bound(calls, 1000, AWS, 1.0)[0] == full


def test_a_rate_share_does_not_change_a_lone_nodes_chain() -> None:
    calls = MIN_CALLS[("m5.xlarge", "full")]
    assert lower_bound(calls, 1, AWS, 0.95)[0] == pytest.approx(lower_bound(calls, 1, AWS)[0])


def test_ec2_busy_time_is_the_union_of_calls_and_attachments_settling() -> None:
    calls = [
        ("DescribeInstances", 0.1, 0.2),
        ("CreateNetworkInterface", 0.3, 0.6),  # two chains in parallel count once
        ("CreateNetworkInterface", 0.35, 0.65),
        ("AttachNetworkInterface", 0.7, 1.0),  # then settles until 3.0
        ("ModifyNetworkInterfaceAttribute", 1.0, 1.2),  # inside the settling
        ("DescribeNetworkInterfaces", 3.5, 3.6),  # after the end: the bench's own check
    ]
    busy = ec2_busy_seconds(calls, attach_delay=2.0, end=3.1)
    assert busy == pytest.approx(0.1 + 0.35 + 2.3)


def test_ec2_busy_time_is_clipped_to_the_run() -> None:
    assert ec2_busy_seconds([("AttachNetworkInterface", 0.5, 1.0)], 2.0, end=2.0) == pytest.approx(1.5)
    assert ec2_busy_seconds([], 2.0, end=2.0) == 0.0
