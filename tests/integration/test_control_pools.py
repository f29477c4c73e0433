"""Warm and prefix modes hold their targets as pods (the agent's ``assigned``) come and go."""

from __future__ import annotations

import time

from tests.integration.control_support import (
    agent_confirms_release,
    agent_returns,
    agent_takes,
    assert_redis_equals_ec2,
    context_for,
    join,
    pool_counts,
    vpcnet_enis,
)
from vpcnet.control.context import ControlContext
from vpcnet.control.provision import provision_node
from vpcnet.control.warmpool import warm_pool_scan
from vpcnet.domain import Mode
from vpcnet.settings import Settings
from vpcnet.tasknames import PROVISION_NODE
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator


def converge(ctx: ControlContext, node: str, iid: str, az: str) -> int:
    """One beat of the warm pool: scan (EC2-free); a pass for the node if it needs one."""
    followups = [f for f in warm_pool_scan(ctx) if f.args[0] == node]
    for f in followups:
        assert f.task == PROVISION_NODE
        provision_node(ctx, node, iid, az)
    return len(followups)


def check_ec2(ctx: ControlContext, ec2: Ec2Emulator, node: str, iid: str) -> None:
    st = ctx.state.read_node(node)
    assert st is not None
    assert_redis_equals_ec2(st, vpcnet_enis(ec2, iid))


def test_warm_mode_holds_warm_and_minimum_targets(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    # No ENIs held ahead (the AWS VPC CNI's warm mode): a second ENI comes with its IPs.
    ctx = context_for(control_settings.with_(mode=Mode.WARM, warm_ip_target=4, minimum_ip_target=6,
                                             ip_cooldown_seconds=30, warm_attached_enis=0))
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "w", "m5.large")
    provision_node(ctx, "w", iid, az)
    assert pool_counts(ctx, "w") == (6, 6)  # minimum 6 beats 0 used + 4 warm

    agent_takes(ctx, "w", 5)
    assert converge(ctx, "w", iid, az) == 1
    assert pool_counts(ctx, "w") == (9, 4)  # 5 used + 4 warm

    taken = agent_takes(ctx, "w", 3)
    converge(ctx, "w", iid, az)
    assert pool_counts(ctx, "w") == (12, 4)  # the primary is full (9): a second ENI with 3
    assert len(vpcnet_enis(ec2_emulator, iid)) == 2
    check_ec2(ctx, ec2_emulator, "w", iid)

    # Pods go away, but their IPs are still cooling: nothing is trimmed yet.
    agent_returns(ctx, "w", taken, freed_at=time.time())
    assert converge(ctx, "w", iid, az) == 0
    # After the cooldown the surplus is requested; only what the agent confirms goes back.
    agent_returns(ctx, "w", taken, freed_at=time.time() - 60)
    assert converge(ctx, "w", iid, az) == 1  # request release of 12 - (5 + 4) = 3
    assert pool_counts(ctx, "w") == (12, 4)  # 5 used, 3 requested, 4 free
    assert len(agent_confirms_release(ctx, "w")) == 3
    converge(ctx, "w", iid, az)  # unassign the confirmed ones in EC2
    assert pool_counts(ctx, "w") == (9, 4)
    check_ec2(ctx, ec2_emulator, "w", iid)
    assert ctx.state.read_usage("w", 30).release_requested == frozenset()
    assert converge(ctx, "w", iid, az) == 0  # at target: stable


def test_prefix_mode_holds_the_warm_prefix_target(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    ctx = context_for(control_settings.with_(mode=Mode.PREFIX, warm_prefix_target=1))
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "p", "m5.large")
    provision_node(ctx, "p", iid, az)
    assert pool_counts(ctx, "p") == (16, 16)
    assert ctx.recorder.node_calls("p") == {"DescribeInstances": 1, "AssignPrivateIpAddresses": 1}

    first = agent_takes(ctx, "p", 1)
    converge(ctx, "p", iid, az)
    assert pool_counts(ctx, "p") == (32, 31)  # one prefix in use, one whole prefix warm

    more = agent_takes(ctx, "p", 16)
    converge(ctx, "p", iid, az)
    assert pool_counts(ctx, "p") == (48, 31)
    check_ec2(ctx, ec2_emulator, "p", iid)
    assert all(p.endswith("/28") for e in vpcnet_enis(ec2_emulator, iid) for p in e["prefixes"])

    agent_returns(ctx, "p", first + more, freed_at=time.time() - 60)
    converge(ctx, "p", iid, az)  # keep one warm prefix: request the other two (32 IPs)
    assert len(agent_confirms_release(ctx, "p")) == 32
    converge(ctx, "p", iid, az)
    assert pool_counts(ctx, "p") == (16, 16)
    assert sum(len(e["prefixes"]) for e in vpcnet_enis(ec2_emulator, iid)) == 1
    check_ec2(ctx, ec2_emulator, "p", iid)
