"""Warm mode holds its ENIs attached ahead (``Settings.warm_attached_enis``): the join
pass is DescribeInstances + one Assign (no ENI ahead delays readiness); once the node
is READY the warm-pool scan's pass attaches every ENI the type allows, holding only the
warm target's IPs; a demand is then met by AssignPrivateIpAddresses alone, one per ENI,
in parallel lanes of one round; the beat (warm-pool scan, GC) leaves the empty ENIs
alone. An ENI ahead that fails (ENI quota, subnet full) breaks nothing: the node stays
READY with its IPs, demand is served by Assign, and they back off.

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
from vpcnet.control.provision import ENIS_AHEAD_BACKOFF_SECONDS, provision_node
from vpcnet.control.ready import node_ready
from vpcnet.control.warmpool import warm_pool_scan
from vpcnet.domain import Mode, NodePhase
from vpcnet.settings import Settings
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.ec2.faults import FaultRule
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
    ec2_emulator.reset_counters()
    provision_node(ctx, "w", iid, az)
    # The join pass: no ENI ahead before the node is READY, one Assign of the warm IPs.
    calls = ec2_emulator.counters().get("calls", {})
    assert "CreateNetworkInterface" not in calls and calls.get(ASSIGN) == 1, calls
    assert len(vpcnet_enis(ec2_emulator, iid)) == 1
    assert converge(ctx, "w", iid, az) == 0  # nor from the scan while not READY
    agent_ready(ctx, "w")
    assert node_ready(ctx, "w")

    assert converge(ctx, "w", iid, az) == 1  # READY: the scan's pass adds the ENIs ahead
    enis = vpcnet_enis(ec2_emulator, iid)
    assert len(enis) == 4  # all attached once ready
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


def test_enis_ahead_that_fail_never_break_the_node_and_back_off(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    ctx = context_for(control_settings.with_(mode=Mode.WARM, warm_ip_target=WARM,
                                             ip_cooldown_seconds=30))
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "q", "m5.xlarge")
    provision_node(ctx, "q", iid, az)
    agent_ready(ctx, "q")
    assert node_ready(ctx, "q")
    # The account's ENI quota is spent: every CreateNetworkInterface fails for good.
    ec2_emulator.set_faults(rules=[FaultRule("CreateNetworkInterface", "NetworkInterfaceLimitExceeded",
                                             "You have reached the limit of network interfaces")])
    ec2_emulator.reset_counters()
    assert converge(ctx, "q", iid, az) == 1  # the pass does not raise
    assert ec2_emulator.counters()["calls"].get("CreateNetworkInterface", 0) >= 1
    st = ctx.state.read_node("q")
    assert st is not None and st.phase is NodePhase.READY and not st.record.error
    assert st.record.enis_ahead_after > time.time() + ENIS_AHEAD_BACKOFF_SECONDS / 2
    assert pool_counts(ctx, "q") == (WARM, WARM)  # its IPs kept
    warnings = [e.reason for e in ctx.kube.list_node_events("q") if e.type == "Warning"]
    assert warnings == ["EnisAheadFailed"], warnings

    # Backing off: the scan sends no pass for the ENIs ahead.
    assert not [f for f in warm_pool_scan(ctx) if f.args[0] == "q"]
    # A burst is still served, by Assign on the primary (a needed ENI keeps failing).
    agent_takes(ctx, "q", WARM)
    ctx.state.redis.hset(ctx.state.node_keys("q").demand,
                         mapping={"waiting": 4, "pool": WARM, "at": f"{time.time():.6f}"})
    ec2_emulator.reset_counters()
    provision_node(ctx, "q", iid, az)
    calls = ec2_emulator.counters().get("calls", {})
    assert calls.get(ASSIGN) == 1 and "CreateNetworkInterface" not in calls, calls
    assert pool_counts(ctx, "q") == (2 * WARM + 4, WARM + 4)
    st = ctx.state.read_node("q")
    assert st is not None and st.phase is NodePhase.READY
    assert_redis_equals_ec2(st, vpcnet_enis(ec2_emulator, iid))

    # The back-off over (and the quota back): the next quiet pass adds them.
    ec2_emulator.set_faults(rules=[])
    ctx.state.redis.delete(ctx.state.node_keys("q").demand)
    ctx.state.set_fields("q", {"enis_ahead_after": "0"}, register=False)
    assert converge(ctx, "q", iid, az) == 1
    assert len(vpcnet_enis(ec2_emulator, iid)) == 4
