"""A temporary error retries its task through a real worker until it succeeds, never
sooner than the delay the error asks for (``workers.base.ControlTask``)."""

from __future__ import annotations

from datetime import datetime

from celery import Celery

from tests.fixtures import task_events as te
from tests.fixtures.celery import CeleryProcs, wait_until
from tests.fixtures.task_events import TaskEvents
from tests.integration.control_support import join
from vpcnet.settings import Settings
from vpcnet.tasknames import PROVISION_NODE
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator

task_events = te.task_events

# The EC2 adapter tries a throttled call this many times, then raises
# Ec2TemporaryError("RequestLimitExceeded", delay=PERSISTED_THROTTLING_DELAY).
ADAPTER_TRIES = 11
PERSISTED_THROTTLING_DELAY = 5.0


def test_persistent_throttling_retries_no_sooner_than_its_delay_then_succeeds(
    control_settings: Settings, celery_procs: CeleryProcs, task_client: Celery, task_events: TaskEvents,
    ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "n1", "m5.large")
    # EC2 throttles the pass's first call (DescribeInstances) every time the adapter tries
    # it, then recovers. Not "*": the facts a first node reads ahead meanwhile (instance
    # type, the zone's subnets) would take the faults, and a failed read ahead is only
    # logged, never the pass's error.
    ec2_emulator.set_faults(rules=[{"action": "DescribeInstances", "code": "RequestLimitExceeded",
                                    "count": ADAPTER_TRIES}])
    celery_procs.start_worker("w1")
    sent = task_client.send_task(PROVISION_NODE, args=["n1", iid, az])
    out = sent.get(timeout=120)
    assert out["phase"] == "provisioned" and out["written"], out
    # The result is stored before the worker publishes task-succeeded.
    wait_until(lambda: "task-succeeded" in task_events.of_task(sent.id), 30, "the task's succeeded event")

    runs = [e for e in task_events.events() if e.get("uuid") == sent.id]
    kinds = [e["type"] for e in runs]
    assert kinds.count("task-retried") == 1 and kinds.count("task-started") == 2, kinds
    assert kinds[-1] == "task-succeeded" and "task-failed" not in kinds, kinds
    retried = runs[kinds.index("task-retried")]
    assert "RequestLimitExceeded" in retried["exception"], retried
    # The retry's message carries the time it may run: at least the error's delay after
    # the failed run ended (the task-retried event is published after the retry's message
    # was), where Celery's backoff alone would say 0 or 1 s for a first retry.
    redelivered = [e for e in runs if e["type"] == "task-received" and e.get("eta")]
    assert len(redelivered) == 1, runs
    eta = datetime.fromisoformat(redelivered[0]["eta"]).timestamp()
    assert eta - retried["timestamp"] >= PERSISTED_THROTTLING_DELAY - 1.0, (eta, retried)
