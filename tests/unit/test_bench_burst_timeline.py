"""``vpcnet bench burst --timeline``: a burst's ADDs and EC2 calls on one time line, in
ms from its first ADD's start; calls before the first start or after the last end are
not the burst's."""

from __future__ import annotations

from vpcnet_sim.bench.burst import timeline
from vpcnet_sim.ec2.calllog import LoggedCall


def test_the_timeline_orders_adds_done_and_the_calls_of_the_burst() -> None:
    runs = [(10.0, 10.15, 0, ""), (10.02, 10.95, 0, ""), (10.3, 10.98, 11, "no IP")]
    calls = [
        LoggedCall("DescribeInstances", 9.5, 9.6),  # before the burst
        LoggedCall("DescribeInstances", 10.25, 10.4),
        LoggedCall("AssignPrivateIpAddresses", 10.45, 10.7),
        LoggedCall("DescribeInstances", 11.5, 11.6),  # after it
    ]
    assert timeline(runs, calls) == [
        "+   200 ms  1 ADDs done (1)",
        "+   250 ms  DescribeInstances (answered +400)",
        "+   300 ms  last of 3 ADDs started",
        "+   450 ms  AssignPrivateIpAddresses (answered +700)",
        "+  1000 ms  2 ADDs done (3)",
    ]
    assert timeline([], calls) == []
