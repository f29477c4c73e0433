"""``vpcnet bench burst``'s Assign round trip comes from the emulator's call log: only
AssignPrivateIpAddresses calls count, each from its arrival to its answer, and the
second burst's figure only has the calls that arrived after it started."""

from __future__ import annotations

import time
from typing import Any

from vpcnet_sim.bench.burst import ASSIGN_ACTION, percentile, round_trips
from vpcnet_sim.ec2 import Ec2Emulator, World


def _assign(ec2: Any, eni_id: str, count: int) -> None:
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=count)


def test_assign_round_trips_are_the_logged_assign_calls_only(
    ec2_emulator: Ec2Emulator, ec2_world: World
) -> None:
    ec2 = ec2_emulator.client()
    eni = ec2.create_network_interface(SubnetId=ec2_world.subnet_ids[0])["NetworkInterface"]
    eni_id = eni["NetworkInterfaceId"]
    ec2_emulator.reset_counters()
    _assign(ec2, eni_id, 1)
    _assign(ec2, eni_id, 2)
    ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])  # not an Assign
    between = time.monotonic()  # the emulator runs in this process, on this clock
    _assign(ec2, eni_id, 3)

    assigns = ec2_emulator.calls(ASSIGN_ACTION)
    assert len(assigns) == 3 and len(ec2_emulator.calls()) == 4
    rtts = [(c.answered - c.received) * 1000 for c in assigns]
    everything = round_trips(assigns)
    assert everything == {"count": 3, "p50": round(percentile(rtts, 50), 1), "max": round(max(rtts), 1)}
    later = round_trips(assigns, since=between)
    assert later == {"count": 1, "p50": round(rtts[2], 1), "max": round(rtts[2], 1)}
    assert round_trips(ec2_emulator.calls("UnassignPrivateIpAddresses")) == {}
