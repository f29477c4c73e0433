"""provision_node in-process against real Redis and the EC2/Kubernetes emulators over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.control_support import (
    assert_redis_equals_ec2,
    assert_tagged,
    context_for,
    join,
    vpcnet_enis,
)
from vpcnet.control.context import ControlContext
from vpcnet.control.provision import provision_node
from vpcnet.domain import NodePhase
from vpcnet.limits import bundled_limits
from vpcnet.settings import Settings
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator


@pytest.fixture
def ctx(control_settings: Settings) -> Iterator[ControlContext]:
    yield context_for(control_settings)


def test_full_join_of_one_node(ctx: ControlContext, ec2_emulator: Ec2Emulator, ec2_world: World,
                               kube_emulator: KubeEmulator) -> None:
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], ec2_world.azs[0], "n1", "m5.xlarge")
    out = provision_node(ctx, "n1", iid, ec2_world.azs[0])
    assert out.phase == NodePhase.PROVISIONED and out.written
    enis = vpcnet_enis(ec2_emulator, iid)
    assert len(enis) == 4 and all(len(e["secondary_ips"]) == 14 for e in enis)
    for e in enis[1:]:
        assert_tagged(e, ctx.cluster, "n1", iid)
        assert e["delete_on_termination"]
    st = ctx.state.read_node("n1")
    assert st is not None
    assert_redis_equals_ec2(st, enis)
    assert ctx.recorder.node_calls("n1") == out.plan_calls
    # a second pass is a no-op: one describe, no write, no generation bump
    again = provision_node(ctx, "n1", iid, ec2_world.azs[0])
    assert not again.written and again.generation == out.generation
    lim = bundled_limits("m5.xlarge")
    assert lim is not None and len(vpcnet_enis(ec2_emulator, iid)) == lim.max_enis
