"""Warm mode holds its ENIs attached ahead (``Settings.warm_attached_enis``): after the
join every ENI the type allows is attached, holding only the warm target's IPs; a
demand is then met by AssignPrivateIpAddresses alone, one per ENI, in parallel lanes of
one round; the beat (warm-pool scan, GC) leaves the empty ENIs alone.

Real redis-server and the EC2 emulator (at AWS's latencies for the burst, so that the
call log shows which calls were in flight together).
"""

from __future__ import annotations

import time

import pytest

from tests.integration.control_support import (
    agent_ready,
    agent_takes,
    assert_redis_equals_ec2,
    context_for,
    join,
    pool_counts,
    vpcnet_enis,
)
from tests.integration.test_control_pools import converge
from vpcnet.control.gc import gc_enis
from vpcnet.control.provision import provision_node
from vpcnet.control.ready import node_ready
from vpcnet.domain import Mode
from vpcnet.settings import Settings
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator

pytestmark = pytest.mark.timeout(120)

ASSIGN = "AssignPrivateIpAddresses"
WARM = 5
DEMAND = 30  # m5.xlarge: 4 ENIs x 14 pod IPs; 5 held + 30 waiting + 5 warm = 40 > 14


def test_a_warm_node_grows_by_assigns_alone_in_one_round(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    ctx = context_for(control_settings.with_(mode=Mode.WARM, warm_ip_target=WARM,
                                             ip_cooldown_seconds=30))
    assert ctx.settings.warm_attached_enis == -1  # the default: every ENI the type allows
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "w", "m5.xlarge")
    provision_node(ctx, "w", iid, az)
    agent_ready(ctx, "w")
    assert node_ready(ctx, "w")

    enis = vpcnet_enis(ec2_emulator, iid)
    assert len(enis) == 4  # all attached at join
    assert sorted(len(e["secondary_ips"]) for e in enis) == [0, 0, 0, WARM]  # IPs on target
    assert pool_counts(ctx, "w") == (WARM, WARM)

    # The beat leaves the empty ENIs alone: no pass for the pool, GC deletes nothing.
    assert converge(ctx, "w", iid, az) == 0
    assert gc_enis(ctx, now=time.time() + 10 * ctx.settings.eni_gc_grace_seconds).deleted == ()
    assert len(vpcnet_enis(ec2_emulator, iid)) == 4

    # A burst: the warm IPs taken, DEMAND more ADDs waiting (the agent's report).
    agent_takes(ctx, "w", WARM)
    ctx.state.redis.hset(ctx.state.node_keys("w").demand,
                         mapping={"waiting": DEMAND, "pool": WARM, "at": f"{time.time():.6f}"})
    ec2_emulator.set_config(preset="aws")
    ec2_emulator.reset_counters()
    out = provision_node(ctx, "w", iid, az)

    assert out.rounds == 1 and not out.again, out
    calls = ec2_emulator.counters().get("calls", {})
    assert "CreateNetworkInterface" not in calls and "AttachNetworkInterface" not in calls, calls
    assigns = ec2_emulator.calls(ASSIGN)
    assert len(assigns) == 3, assigns  # the primary's 9 free slots, then 14 and 12
    assert all(a.overlaps(b) for a in assigns for b in assigns), assigns  # parallel lanes
    pool, free = pool_counts(ctx, "w")
    assert pool == WARM + DEMAND + WARM and free == DEMAND + WARM
    st = ctx.state.read_node("w")
    assert st is not None
    assert_redis_equals_ec2(st, vpcnet_enis(ec2_emulator, iid))
