"""A warm node's ENIs held ahead are planned only once it is READY; the node_ready task
sends that pass itself, so they do not wait for the next warm-pool scan (beat, every
10 s by default). Real Celery worker, redis-server and the EC2 emulator; no beat runs,
so nothing but node_ready can have sent the pass."""

from __future__ import annotations

from celery import Celery

from tests.fixtures.celery import CeleryProcs, wait_until
from tests.integration.control_support import agent_ready, context_for, join, vpcnet_enis
from vpcnet.domain import Mode
from vpcnet.settings import Settings
from vpcnet.tasknames import NODE_READY, PROVISION_NODE
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator


def test_node_ready_sends_the_pass_that_adds_the_enis_ahead(
    control_settings: Settings, celery_procs: CeleryProcs, task_client: Celery,
    ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    celery_procs.settings = control_settings.with_(mode=Mode.WARM, warm_ip_target=5)
    assert celery_procs.settings.warm_attached_enis == -1  # every ENI: 4 on an m5.xlarge
    ctx = context_for(celery_procs.settings)
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "w", "m5.xlarge")
    celery_procs.start_worker("w1")
    task_client.send_task(PROVISION_NODE, args=["w", iid, az]).get(timeout=60)
    wait_until(lambda: (st := ctx.state.read_node("w")) is not None and len(st.enis) == 1,
               30, "the join's ENI written back")
    assert len(vpcnet_enis(ec2_emulator, iid)) == 1  # none ahead before READY

    agent_ready(ctx, "w")
    assert task_client.send_task(NODE_READY, args=["w"]).get(timeout=60) is True
    wait_until(lambda: len(vpcnet_enis(ec2_emulator, iid)) == 4, 30,
               "the ENIs held ahead, with no warm-pool scan running")
