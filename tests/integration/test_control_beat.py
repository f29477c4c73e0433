"""Beat: one active scheduler at a time; its reconcile, node_ready and GC tasks at work."""

from __future__ import annotations

import re
import time

from celery import Celery

from tests.fixtures.celery import CeleryProcs, wait_until
from tests.integration.control_support import agent_ready, all_cluster_enis, context_for, join
from vpcnet.control.provision import provision_node
from vpcnet.control.ready import NOT_READY_TAINT, node_ready
from vpcnet.control.view import TAG_CLUSTER, TAG_CREATED_AT, created_at_tag
from vpcnet.domain import NodePhase
from vpcnet.kube.client import KubeClient
from vpcnet.settings import Settings
from vpcnet.sim.ec2 import Ec2Emulator, World
from vpcnet.sim.kube import KubeEmulator


def leaders(procs: CeleryProcs, names: list[str]) -> list[str]:
    """Beats whose last leadership report says they lead."""
    out = []
    for n in names:
        reports = re.findall(r"beat leadership changed.*leader=(True|False)", procs.log(n).read_text())
        if reports and reports[-1] == "True":
            out.append(n)
    return out


def test_node_ready_only_after_the_agent_programmed_the_generation(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    ctx = context_for(control_settings)
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "n1", "t3.nano")
    kube = KubeClient.from_settings(control_settings, component="test")
    kube.ensure_taint("n1", NOT_READY_TAINT, "NoSchedule")  # the watcher's doing
    provision_node(ctx, "n1", iid, az)
    assert not node_ready(ctx, "n1")  # no agent report yet
    ctx.state.redis.hset(ctx.state.node_keys("n1").agent, mapping={"ready": "1", "generation": "0"})
    assert not node_ready(ctx, "n1")  # ready, but for an older generation
    node = kube.read_node("n1")
    assert node is not None and node.has_taint(NOT_READY_TAINT)
    agent_ready(ctx, "n1")
    assert node_ready(ctx, "n1")
    node = kube.read_node("n1")
    assert node is not None and not node.has_taint(NOT_READY_TAINT)
    st = ctx.state.read_node("n1")
    assert st is not None and st.phase is NodePhase.READY
    kube.close()


def test_one_active_beat_drives_reconcile_ready_and_gc(
    control_settings: Settings, celery_procs: CeleryProcs, task_client: Celery,
    ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    celery_procs.settings = control_settings.with_(
        reconcile_interval_seconds=1.0, gc_interval_seconds=1.0, warm_pool_interval_seconds=1.0,
        eni_gc_grace_seconds=300.0, lease_duration_seconds=3.0,
    )
    ctx = context_for(celery_procs.settings)
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "n1", "m5.large")
    # a leaked ENI (its creator died before attaching it), created an hour ago
    leaked = ec2_emulator.client().create_network_interface(
        SubnetId=ec2_world.subnet_ids[1],
        TagSpecifications=[{"ResourceType": "network-interface", "Tags": [
            {"Key": TAG_CLUSTER, "Value": ctx.cluster},
            {"Key": TAG_CREATED_AT, "Value": created_at_tag(time.time() - 3600)}]}],
    )["NetworkInterface"]["NetworkInterfaceId"]

    celery_procs.start_worker("w1")
    celery_procs.start_beat("b1")
    celery_procs.start_beat("b2")
    wait_until(lambda: len(leaders(celery_procs, ["b1", "b2"])) == 1, 30, "one beat leading")
    task_client.send_task("vpcnet.provision_node", args=["n1", iid, az]).get(timeout=60)

    # GC (beat): the leaked ENI goes, the node's ENIs stay
    wait_until(lambda: leaked not in {e["eni_id"] for e in all_cluster_enis(ec2_emulator, ctx.cluster)},
               30, "GC of the leaked ENI")
    assert len(all_cluster_enis(ec2_emulator, ctx.cluster)) == 2

    # Reconcile (beat) notices the agent's report, node_ready removes the taint
    agent_ready(ctx, "n1")
    wait_until(lambda: (st := ctx.state.read_node("n1")) is not None and st.phase is NodePhase.READY,
               30, "node READY via reconcile")

    # Failover: kill -9 the leading beat; the standby takes over within the lease
    (leader,) = leaders(celery_procs, ["b1", "b2"])
    standby = "b2" if leader == "b1" else "b1"
    celery_procs.kill(leader)
    wait_until(lambda: leaders(celery_procs, [standby]) == [standby], 30, "standby beat taking over")
    # Reconcile keeps working under the new leader: Redis loses the node's state, it comes back.
    ctx.state.redis.delete(ctx.state.node_keys("n1").enis)
    wait_until(lambda: (st := ctx.state.read_node("n1")) is not None and len(st.enis) == 3,
               30, "reconcile restoring the node's ENIs in Redis")
