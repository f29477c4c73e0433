"""A pass handed to a holder that was killed holding the node's lock is still served.

A worker killed mid-pass (kill -9) leaves its lock until the TTL runs out, and its
hand-over hash says a provisioning pass holds it; a later pass for the node (the killed
task's own redelivery among them) hands its work over to that dead holder. The task then
sends one pass for when that lock would have expired, so the node is provisioned anyway.

Real redis-server, a real Celery worker, the EC2 emulator over boto3.
"""

from __future__ import annotations

import pytest
from celery import Celery

from tests.fixtures.celery import CeleryProcs, wait_until
from tests.integration.control_support import context_for
from tests.integration.test_control_chaos import assert_one_clean_run, provisioned
from tests.integration.test_control_join import launch
from vpcnet.settings import Settings
from vpcnet.state.claims import PassHandover
from vpcnet.tasknames import PROVISION_NODE
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator

pytestmark = pytest.mark.timeout(120)

DEAD = "token-of-a-killed-holder"
LOCK_LEFT_MS = 3000


def test_a_pass_handed_to_a_killed_holder_is_still_served(
    control_settings: Settings, celery_procs: CeleryProcs, task_client: Celery,
    ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    nodes = launch(ec2_emulator, kube_emulator, ec2_world, 1)
    (name, (iid, az, _)), = nodes.items()
    ctx = context_for(control_settings)
    # What a provisioning pass killed mid-pass leaves: its lock (until the TTL) and the
    # hand-over hash naming it as the holder.
    ctx.state.redis.set(ctx.state.keys.node(name).lock, DEAD, px=LOCK_LEFT_MS)
    PassHandover(ctx.state.redis, ctx.state.keys, 60).begin(name, DEAD)

    celery_procs.start_worker("w1")
    first = task_client.send_task(PROVISION_NODE, args=[name, iid, az]).get(timeout=60)
    # Handed to the dead holder: this pass did nothing, and its recheck is due once the
    # dead lock has expired (its time left, plus a margin).
    assert first["handed_over"] and first["rounds"] == 0, first
    assert first["actions"] == 0 and not first["written"], first
    assert 0 < first["recheck_after"] <= LOCK_LEFT_MS / 1000 + 1, first

    wait_until(lambda: provisioned(ctx, [name]), 60, "the node provisioned after the dead lock")
    assert_one_clean_run(ec2_emulator, ctx.cluster, nodes)
    wait_until(lambda: "recheck enqueued" in celery_procs.log("w1").read_text(), 30,
               "the worker's log of the recheck it sent")
