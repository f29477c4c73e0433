"""Beat: one active scheduler at a time; its reconcile, node_ready and GC tasks at work.

Which beat is active is judged by what arrives in the broker: each scheduled task's
message carries Celery's ``origin`` header (``gen<pid>@<host>``, the sending process), as
in the watcher-replica test; never by what a beat logs about itself.
"""

from __future__ import annotations

import re
import time

import redis
from celery import Celery

from tests.fixtures.celery import CeleryProcs, wait_until
from tests.fixtures.watcher import FAST_QUEUE, QUEUE, queued
from tests.integration.control_support import agent_ready, all_cluster_enis, context_for, join
from vpcnet.control.provision import provision_node
from vpcnet.control.ready import node_ready
from vpcnet.control.view import created_at_tag
from vpcnet.domain import NodePhase
from vpcnet.kube.client import KubeClient
from vpcnet.settings import Settings
from vpcnet.tasknames import GC_ENIS, PROVISION_NODE, RECONCILE_ALL, WARM_POOL
from vpcnet.wellknown import NOT_READY_TAINT, TAG_CLUSTER, TAG_CREATED_AT
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator

# Beat's schedule (refresh-limits is hourly: it never comes up in a test).
SCHEDULED = {RECONCILE_ALL, GC_ENIS, WARM_POOL}


def scheduled_senders(broker: redis.Redis[bytes]) -> list[int]:
    """The pid that sent each scheduled task waiting in the broker, oldest first."""
    out = []
    for queue in (QUEUE, FAST_QUEUE):
        for t in queued(broker, queue):
            if t.name in SCHEDULED:
                m = re.fullmatch(r"gen(\d+)@.+", t.origin)
                assert m, f"no sender in origin {t.origin!r}"
                out.append(int(m.group(1)))
    return out


def senders_after(broker: redis.Redis[bytes], reconciles: int) -> set[int]:
    """Once ``reconciles`` reconcile scans are queued (one a second: longer than a lease
    plus a standby's poll, so a second active beat would have sent too), who sent what
    is queued."""
    wait_until(lambda: sum(t.name == RECONCILE_ALL for t in queued(broker, FAST_QUEUE)) >= reconciles,
               60, f"{reconciles} reconcile scans in the broker")
    return set(scheduled_senders(broker))


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
    control_settings: Settings, celery_procs: CeleryProcs, task_client: Celery, broker_db: redis.Redis[bytes],
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

    # Two beats, no worker yet: what they send stays in the broker to be read.
    beats = {name: celery_procs.start_beat(name).pid for name in ("b1", "b2")}
    senders = senders_after(broker_db, 6)
    assert len(senders) == 1 and senders <= set(beats.values()), (senders, beats)
    (leader,) = [name for name, pid in beats.items() if pid in senders]
    standby = "b2" if leader == "b1" else "b1"

    celery_procs.start_worker("w1")
    task_client.send_task(PROVISION_NODE, args=["n1", iid, az]).get(timeout=60)
    # The task may have handed its pass to a beat-sent pass holding the node's lock
    # (it then returns at once): the node is provisioned once a pass wrote its ENIs back.
    wait_until(lambda: (st := ctx.state.read_node("n1")) is not None and len(st.enis) == 3,
               30, "the node's ENIs written back")

    # GC (beat): the leaked ENI goes, the node's ENIs stay
    wait_until(lambda: leaked not in {e["eni_id"] for e in all_cluster_enis(ec2_emulator, ctx.cluster)},
               30, "GC of the leaked ENI")
    assert len(all_cluster_enis(ec2_emulator, ctx.cluster)) == 2

    # Reconcile (beat) notices the agent's report, node_ready removes the taint
    agent_ready(ctx, "n1")
    wait_until(lambda: (st := ctx.state.read_node("n1")) is not None and st.phase is NodePhase.READY,
               30, "node READY via reconcile")

    # Failover: with the worker stopped (scheduled tasks queue up again), kill -9 the
    # active beat; from then on only the standby sends.
    celery_procs.stop("w1")
    celery_procs.kill(leader)
    broker_db.delete(QUEUE, FAST_QUEUE)  # what was queued before the kill
    assert senders_after(broker_db, 3) == {beats[standby]}

    # Reconcile keeps working under the new leader: Redis loses the node's state, it comes back.
    celery_procs.start_worker("w2")
    ctx.state.redis.delete(ctx.state.node_keys("n1").enis)
    wait_until(lambda: (st := ctx.state.read_node("n1")) is not None and len(st.enis) == 3,
               30, "reconcile restoring the node's ENIs in Redis")
