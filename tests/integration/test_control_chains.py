"""A provisioning pass runs a node's ENI chains in parallel (issue 13: "a node's ENIs are
created, attached and configured in parallel chains"), and a chain that fails leaves
the others' ENIs written back, nothing half-created.

Real Redis, the EC2 emulator over HTTP with AWS's latencies, the Kubernetes emulator.
The emulator's call log says when each request arrived and was answered, so which
calls were in flight together is read from EC2's side, not from a wall clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations

import pytest

from tests.integration.control_support import (
    all_cluster_enis,
    assert_redis_equals_ec2,
    context_for,
    join,
    vpcnet_enis,
)
from vpcnet.control.context import ControlContext
from vpcnet.control.provision import provision_node
from vpcnet.domain import NodePhase
from vpcnet.errors import Ec2PermanentError
from vpcnet.ops.audit import check_enis, check_redis_matches_ec2
from vpcnet.ops.collect import collect, to_snapshot
from vpcnet.settings import Settings
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator

CREATE = "CreateNetworkInterface"


@pytest.fixture
def ctx(control_settings: Settings) -> Iterator[ControlContext]:
    yield context_for(control_settings.with_(eni_gc_grace_seconds=0.0))


def test_a_node_needing_three_enis_makes_them_in_one_chains_time(
    ctx: ControlContext, ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    ec2_emulator.set_config(preset="aws", attach_delay=0.0)
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "n1", "m5.xlarge")
    ec2_emulator.reset_counters()
    out = provision_node(ctx, "n1", iid, az)
    assert out.written and out.phase == NodePhase.PROVISIONED

    creates = ec2_emulator.calls(CREATE)
    assert len(creates) == 3
    # Every pair of the node's CreateNetworkInterface calls was in flight together: the
    # three chains ran side by side, not one after another.
    assert all(a.overlaps(b) for a, b in combinations(creates, 2)), creates
    # Parallel, not more: the calls are the plan's, each counted for the node.
    assert ctx.recorder.node_calls("n1") == out.plan_calls
    st = ctx.state.read_node("n1")
    assert st is not None
    assert_redis_equals_ec2(st, vpcnet_enis(ec2_emulator, iid))


@pytest.mark.parametrize("failing", ["AttachNetworkInterface", "ModifyNetworkInterfaceAttribute"])
def test_a_chain_failing_for_good_leaves_the_other_enis_written_back_and_nothing_leaked(
    failing: str, ctx: ControlContext, control_settings: Settings, ec2_emulator: Ec2Emulator,
    ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    ec2_emulator.set_config(preset="aws", attach_delay=0.0)
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "n1", "m5.xlarge")
    ec2_emulator.set_faults(rules=[{"action": failing, "code": "InvalidParameterValue",
                                    "count": 1}])
    with pytest.raises(Ec2PermanentError):
        provision_node(ctx, "n1", iid, az)

    # What the pass did is in Redis exactly as in EC2: the primary's addresses, the two
    # chains that did not fail, and (a failed DeleteOnTermination) the attached ENI.
    attached = vpcnet_enis(ec2_emulator, iid)
    assert len(attached) == (3 if failing == "AttachNetworkInterface" else 4)
    st = ctx.state.read_node("n1")
    assert st is not None and st.phase is NodePhase.ERROR
    assert_redis_equals_ec2(st, attached)
    # Nothing half-created: every ENI of the cluster is attached (a grace of 0 would
    # make any other one a leak), and the audit agrees.
    assert {e["eni_id"] for e in all_cluster_enis(ec2_emulator, ctx.cluster)} <= {
        e["eni_id"] for e in attached}
    snapshot = to_snapshot(collect(control_settings.with_(eni_gc_grace_seconds=0.0)))
    assert check_enis(snapshot) + check_redis_matches_ec2(snapshot) == []

    # The retry completes the node from there.
    ec2_emulator.set_faults()
    again = provision_node(ctx, "n1", iid, az)
    assert again.written and again.phase == NodePhase.PROVISIONED
    done = vpcnet_enis(ec2_emulator, iid)
    assert len(done) == 4 and all(e["delete_on_termination"] for e in done[1:])
    final = ctx.state.read_node("n1")
    assert final is not None
    assert_redis_equals_ec2(final, done)
