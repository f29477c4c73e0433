"""The first node of a cluster reads its instance type's limits and its subnet's CIDR at
the same time: two facts the cluster then caches, a DescribeInstanceTypes and a
DescribeSubnets that a lone node's join waited for one after the other (~0.1 s each)."""

from __future__ import annotations

import threading

import pytest

from tests.integration.control_support import context_for, join
from vpcnet.control.provision import provision_node
from vpcnet.domain import NodePhase
from vpcnet.settings import Settings
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.ec2.counters import Counters
from vpcnet_sim.kube import KubeEmulator

pytestmark = pytest.mark.timeout(120)

# How long the emulator holds DescribeInstanceTypes for a DescribeSubnets to arrive: reads
# one after the other never meet, and then the pass goes on after this hang guard.
HOLD_SECONDS = 10.0


class HoldsTypesUntilSubnets(Counters):
    """Counts as the emulator does; answers DescribeInstanceTypes only once a
    DescribeSubnets has arrived (or the hold ran out), and records which it was."""

    def __init__(self) -> None:
        super().__init__()
        self.subnets_arrived = threading.Event()
        self.met: list[bool] = []

    def call(self, action: str) -> None:
        super().call(action)
        if action == "DescribeSubnets":
            self.subnets_arrived.set()
        elif action == "DescribeInstanceTypes":
            self.met.append(self.subnets_arrived.wait(HOLD_SECONDS))


def test_the_first_node_reads_its_limits_and_subnet_at_once(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator,
) -> None:
    counters = HoldsTypesUntilSubnets()
    ec2_emulator.call_counters = counters
    ctx = context_for(control_settings)
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "n1", "m5.large")

    out = provision_node(ctx, "n1", iid, az)

    assert out.phase == NodePhase.PROVISIONED.value
    assert counters.met == [True]  # one DescribeInstanceTypes, answered with the subnet read
    calls = counters.snapshot()["calls"]
    assert calls["DescribeInstanceTypes"] == calls["DescribeSubnets"] == 1
    # Both facts are cached: the next pass reads neither.
    provision_node(ctx, "n1", iid, az)
    assert counters.snapshot()["calls"]["DescribeSubnets"] == 1
    assert counters.snapshot()["calls"]["DescribeInstanceTypes"] == 1


class HoldsInstancesUntilFacts(Counters):
    """Answers DescribeInstances only once a DescribeInstanceTypes and a DescribeSubnets
    have arrived (or the hold ran out), and records which it was."""

    def __init__(self) -> None:
        super().__init__()
        self.types_arrived = threading.Event()
        self.subnets_arrived = threading.Event()
        self.met: list[bool] = []

    def call(self, action: str) -> None:
        super().call(action)
        if action == "DescribeSubnets":
            self.subnets_arrived.set()
        elif action == "DescribeInstanceTypes":
            self.types_arrived.set()
        elif action == "DescribeInstances":
            self.met.append(self.types_arrived.wait(HOLD_SECONDS)
                            and self.subnets_arrived.wait(HOLD_SECONDS))


def test_the_first_node_reads_its_facts_while_describe_instances_is_in_flight(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator,
) -> None:
    """The type from the Node's instance-type label, the subnet as every subnet of the
    node's zone: both read while DescribeInstances is in flight, not after it (one round
    trip less on a cluster's first join); one call each, and the pass reads no subnet by
    id afterwards (the zone's read cached it)."""
    counters = HoldsInstancesUntilFacts()
    ec2_emulator.call_counters = counters
    ctx = context_for(control_settings)
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "n1", "m5.large")

    out = provision_node(ctx, "n1", iid, az)

    assert out.phase == NodePhase.PROVISIONED.value
    assert counters.met[:1] == [True]
    calls = counters.snapshot()["calls"]
    assert calls["DescribeInstanceTypes"] == calls["DescribeSubnets"] == 1
    # A second node in the zone reads neither (cached), and no zone again (this process).
    iid2 = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "n2", "m5.large")
    assert provision_node(ctx, "n2", iid2, az).phase == NodePhase.PROVISIONED.value
    calls = counters.snapshot()["calls"]
    assert calls["DescribeInstanceTypes"] == calls["DescribeSubnets"] == 1
