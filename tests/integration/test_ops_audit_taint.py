"""The audit's no-free-IPs check (``pool-empty-untainted``) over the real collection
(EC2 emulator, Kubernetes emulator, real Redis) agrees with the warm-pool scan that owns
the taint: it flags an untainted node only when no IP can be had (``vpcnet.ipsupply``).
The agent's pool report is written by hand, as the control-plane tests do."""

from __future__ import annotations

import time

from tests.integration.control_support import (
    agent_ready,
    agent_returns,
    agent_takes,
    context_for,
    join,
    pool_counts,
)
from vpcnet.control.context import ControlContext
from vpcnet.control.provision import provision_node
from vpcnet.control.ready import node_ready
from vpcnet.control.warmpool import warm_pool_scan
from vpcnet.domain import Mode
from vpcnet.ops.audit import audit
from vpcnet.ops.collect import collect, to_snapshot
from vpcnet.settings import Settings
from vpcnet.wellknown import NO_FREE_IPS_TAINT
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator


def violations(ctx: ControlContext) -> list[tuple[str, str]]:
    return [(v.kind, v.subject) for v in audit(to_snapshot(collect(ctx.settings)))]


def ready_node(ctx: ControlContext, ec2: Ec2Emulator, world: World, kube: KubeEmulator,
               instance_type: str) -> None:
    az = world.azs[0]
    iid = join(ec2, kube, world.subnet_ids[0], az, "n1", instance_type)
    provision_node(ctx, "n1", iid, az)
    agent_ready(ctx, "n1")
    assert node_ready(ctx, "n1")


def tainted(kube: KubeEmulator) -> bool:
    node = kube.get_node("n1")
    assert node is not None
    return any(t["key"] == NO_FREE_IPS_TAINT for t in node["spec"].get("taints") or [])


def test_a_node_at_its_limits_is_flagged_until_tainted_and_not_while_an_ip_cools_down(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    ctx = context_for(control_settings.with_(mode=Mode.FULL, ip_cooldown_seconds=30))
    ready_node(ctx, ec2_emulator, ec2_world, kube_emulator, "t3.small")  # full: at its limits
    assert violations(ctx) == []
    pool = agent_takes(ctx, "n1", pool_counts(ctx, "n1")[0])  # pods hold every IP
    assert violations(ctx) == [("pool-empty-untainted", "n1")]  # the scan has not run yet
    warm_pool_scan(ctx)
    assert tainted(kube_emulator)
    assert violations(ctx) == []

    # A pod goes: its IP cools down for 30 s, an ADD waits for it, the scan lifts the taint.
    agent_returns(ctx, "n1", pool[:1], freed_at=time.time())
    warm_pool_scan(ctx)
    assert not tainted(kube_emulator)
    assert violations(ctx) == []


def test_a_fully_assigned_node_whose_pool_can_grow_is_not_flagged(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    ctx = context_for(control_settings.with_(mode=Mode.WARM, warm_ip_target=2, minimum_ip_target=2))
    ready_node(ctx, ec2_emulator, ec2_world, kube_emulator, "m5.large")
    agent_takes(ctx, "n1", pool_counts(ctx, "n1")[0])  # the warm IPs are taken: it grows next
    warm_pool_scan(ctx)
    assert not tainted(kube_emulator)
    assert violations(ctx) == []
