"""GC of leaked ENIs over the EC2 emulator: the created-at tag decides the grace, and each
delete is fenced by the lock of the ENI's node (invariant 9)."""

from __future__ import annotations

from tests.integration.control_support import all_cluster_enis, context_for, leave_eni
from vpcnet.control.gc import gc_enis
from vpcnet.settings import Settings
from vpcnet_sim.ec2 import Ec2Emulator, World

GRACE = 600.0


def cluster_eni_ids(ec2: Ec2Emulator, cluster: str) -> set[str]:
    return {e["eni_id"] for e in all_cluster_enis(ec2, cluster)}


def test_gc_deletes_what_is_past_the_grace_period_and_keeps_what_is_fresh(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    ctx = context_for(control_settings.with_(eni_gc_grace_seconds=GRACE))
    subnet = ec2_world.subnet_ids[0]
    old = leave_eni(ec2_emulator, subnet, ctx.cluster, 2 * GRACE, "gone-node")
    nameless = leave_eni(ec2_emulator, subnet, ctx.cluster, 2 * GRACE, None)
    fresh = leave_eni(ec2_emulator, subnet, ctx.cluster, 10.0, "new-node")
    report = gc_enis(ctx)
    assert sorted(report.deleted) == sorted([old, nameless])
    assert cluster_eni_ids(ec2_emulator, ctx.cluster) == {fresh}


def test_gc_leaves_a_leaked_eni_while_its_node_is_locked(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    ctx = context_for(control_settings.with_(eni_gc_grace_seconds=GRACE))
    eni = leave_eni(ec2_emulator, ec2_world.subnet_ids[0], ctx.cluster, 2 * GRACE, "n1")
    # A provisioning pass of n1 holds the lock: the ENI may be the one it is about to
    # attach (its ClientToken epoch, and so its created-at, can be older than the grace).
    with ctx.state.locked("n1"):
        ec2_emulator.reset_counters()
        report = gc_enis(ctx)
        assert report.deleted == () and report.skipped == (eni,)
        assert "DeleteNetworkInterface" not in ec2_emulator.counters()["calls"]
    assert gc_enis(ctx).deleted == (eni,)
    assert cluster_eni_ids(ec2_emulator, ctx.cluster) == set()
