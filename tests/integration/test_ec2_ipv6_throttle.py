"""The IPv6 actions draw from AWS's buckets and follow the latency model of
AssignPrivateIpAddresses: AssignIpv6Addresses is one of AWS's individually sized
actions (100 tokens, 5/s), UnassignIpv6Addresses a generic mutating one (50, 5/s)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.integration.ipv6_support import code_of
from vpcnet_sim.ec2 import Ec2Emulator, Ec2SimConfig


@pytest.mark.parametrize(("action", "capacity"), [("AssignIpv6Addresses", 100),
                                                  ("UnassignIpv6Addresses", 50)])
def test_ipv6_action_is_throttled_after_its_bucket(
    ec2_emulator: Ec2Emulator, action: str, capacity: int,
) -> None:
    # A clock 1000x slower refills nothing in the time the burst takes (no timing race).
    ec2_emulator.set_config(time_scale=0.001)
    ec2 = ec2_emulator.client()
    call = (ec2.assign_ipv6_addresses if action == "AssignIpv6Addresses"
            else ec2.unassign_ipv6_addresses)
    params = ({"Ipv6PrefixCount": 1} if action == "AssignIpv6Addresses"
              else {"Ipv6Prefixes": ["2001:db8::/80"]})
    codes = []
    for _ in range(capacity + 1):
        with pytest.raises(ClientError) as exc:
            call(NetworkInterfaceId="eni-00000000000000000", **params)
        codes.append(code_of(exc))
    assert codes[:capacity] == ["InvalidNetworkInterfaceID.NotFound"] * capacity
    assert codes[capacity] == "RequestLimitExceeded"
    assert ec2_emulator.counters()["throttled"] == {action: 1}


def test_ipv6_actions_have_the_latency_of_assign_private_ip_addresses() -> None:
    aws = Ec2SimConfig.aws_like()
    for action in ("AssignIpv6Addresses", "UnassignIpv6Addresses"):
        assert action in aws.latency  # named, not just the generic mutating default
        assert aws.latency_for(action) == aws.latency_for("AssignPrivateIpAddresses")
    assert Ec2SimConfig.fast().latency_for("AssignIpv6Addresses").seconds == 0.0
