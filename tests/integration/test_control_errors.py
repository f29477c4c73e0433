"""Bad input and vanishing nodes: a Warning Event says why, nothing is left half-created."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from celery.events.state import State
from kubernetes import client as k8s

from tests.fixtures import task_events as te
from tests.fixtures.celery import CeleryProcs, wait_until
from tests.fixtures.task_events import TaskEvents
from tests.integration.control_support import all_cluster_enis, context_for, join, vpcnet_enis
from vpcnet.control.context import ControlContext
from vpcnet.control.gc import gc_enis
from vpcnet.control.provision import provision_node
from vpcnet.domain import NodePhase
from vpcnet.errors import ConfigError, PermanentError, UnknownInstanceTypeError
from vpcnet.kube.client import KubeClient
from vpcnet.settings import Settings
from vpcnet.tasknames import EC2_QUEUE, PROVISION_NODE, RELEASE_NODE
from vpcnet_sim.ec2 import Ec2Emulator, Ec2SimConfig, World
from vpcnet_sim.kube import KubeEmulator

task_events = te.task_events


@pytest.fixture
def ctx(control_settings: Settings) -> Iterator[ControlContext]:
    yield context_for(control_settings)


def warnings_of(settings: Settings, node: str) -> list[Any]:
    kube = KubeClient.from_settings(settings, component="test")
    try:
        return [e for e in kube.list_node_events(node) if e.type == "Warning"]
    finally:
        kube.close()


def assert_nothing_created(ec2: Ec2Emulator, ctx: ControlContext, iid: str) -> None:
    enis = vpcnet_enis(ec2, iid)
    assert len(enis) == 1 and enis[0]["secondary_ips"] == [] and enis[0]["prefixes"] == []
    assert all_cluster_enis(ec2, ctx.cluster) == []


def assert_surfaced(ctx: ControlContext, settings: Settings, node: str, words: str) -> None:
    st = ctx.state.read_node(node)
    assert st is not None and st.phase is NodePhase.ERROR and words in st.fields["error"]
    assert any(e["node"] == node and words in e["message"] for e in ctx.state.errors())
    events = warnings_of(settings, node)
    assert events and any(words in e.message for e in events), events


def test_unknown_instance_type(ctx: ControlContext, control_settings: Settings, ec2_emulator: Ec2Emulator,
                               ec2_world: World, kube_emulator: KubeEmulator) -> None:
    # m7i.large is in EC2's catalogue but not in vpcnet's table; EC2 "forgets" it here.
    ec2_emulator.set_faults(rules=[{"action": "DescribeInstanceTypes", "code": "InvalidInstanceType"}])
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], ec2_world.azs[0], "n1", "m7i.large")
    with pytest.raises(UnknownInstanceTypeError):
        provision_node(ctx, "n1", iid, ec2_world.azs[0])
    assert_surfaced(ctx, control_settings, "n1", "m7i.large")
    assert_nothing_created(ec2_emulator, ctx, iid)


@pytest.mark.parametrize(
    ("annotations", "words"),
    [({"vpcnet.io/mode": "turbo"}, "turbo"),
     ({"vpcnet.io/subnet-id": "not-a-subnet"}, "not-a-subnet"),
     ({"vpcnet.io/security-groups": "sg-1,,bogus"}, "security group"),
     ({"vpcnet.io/profile": "nope"}, "nope"),
     ({"vpcnet.io/subnet-id": "subnet-0000000000000000f"}, "subnet-0000000000000000f")],
)
def test_invalid_annotation(ctx: ControlContext, control_settings: Settings, ec2_emulator: Ec2Emulator,
                            ec2_world: World, kube_emulator: KubeEmulator,
                            annotations: dict[str, str], words: str) -> None:
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], ec2_world.azs[0], "n1", "m5.large",
               annotations=annotations)
    with pytest.raises(PermanentError):
        provision_node(ctx, "n1", iid, ec2_world.azs[0])
    assert_surfaced(ctx, control_settings, "n1", words)
    assert_nothing_created(ec2_emulator, ctx, iid)


def test_missing_provider_id(ctx: ControlContext, control_settings: Settings, ec2_emulator: Ec2Emulator,
                             ec2_world: World, kube_emulator: KubeEmulator) -> None:
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], ec2_world.azs[0], "n1", "m5.large",
               provider_id=False)
    with pytest.raises(ConfigError):
        provision_node(ctx, "n1", iid, ec2_world.azs[0])
    assert_surfaced(ctx, control_settings, "n1", "providerID")
    assert_nothing_created(ec2_emulator, ctx, iid)


def test_permanent_error_task_does_not_retry(
    control_settings: Settings, celery_procs: CeleryProcs, task_client: Celery, task_events: TaskEvents,
    broker_db: redis.Redis[bytes], ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    """A permanent error fails the task at once: the result is a FAILURE whose exception is
    the ConfigError, the worker publishes received, started, failed (what Flower builds
    its view from) and nothing else, no retry message waits in the broker, and the node's
    Warning Event was emitted once (a second run would emit it again: the event recorder
    bumps ``count`` of the one Event)."""
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], ec2_world.azs[0], "n1", "m5.large",
               annotations={"vpcnet.io/mode": "turbo"})
    celery_procs.start_worker("w1")
    ec2_emulator.reset_counters()
    sent = task_client.send_task(PROVISION_NODE, args=["n1", iid, ec2_world.azs[0]])
    with pytest.raises(ConfigError, match="turbo"):
        sent.get(timeout=60)
    assert sent.state == "FAILURE" and type(sent.result) is ConfigError
    # task-failed is the last event of the task's last run: any retry came before it.
    wait_until(lambda: "task-failed" in task_events.of_task(sent.id), 30, "the task's failed event")
    assert task_events.of_task(sent.id) == ["task-received", "task-started", "task-failed"]
    # Flower's view, built from the same events as Flower builds it.
    flower = State()
    for event in task_events.events():
        flower.event(event)
    shown = flower.tasks[sent.id]
    assert shown.state == "FAILURE" and shown.exception.startswith("ConfigError(") and "turbo" in shown.exception
    # Nothing left to run: a retry would be a new message (with an ETA, held unacked).
    wait_until(lambda: broker_db.llen(EC2_QUEUE) == 0 and broker_db.hlen("unacked") == 0, 10,
               "an empty broker")
    # An expected error (the base class's ``throws``): logged without a traceback.
    worker_log = celery_procs.log("w1").read_text()
    assert "turbo" in worker_log and "Traceback" not in worker_log
    events = warnings_of(control_settings, "n1")
    assert [(e.count, "turbo" in e.message) for e in events] == [(1, True)], events
    ctx = context_for(control_settings)
    assert [e["node"] for e in ctx.state.errors()] == ["n1"]
    assert ec2_emulator.counters()["calls"] == {}  # invalid input: EC2 never asked


def test_node_deleted_mid_provisioning_leaves_nothing_after_gc(
    control_settings: Settings, celery_procs: CeleryProcs, task_client: Celery,
    ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator, kube_api: Any,
) -> None:
    ec2_emulator.set_config(Ec2SimConfig.aws_like(seed=7))
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "big", "c5.18xlarge")
    ctx = context_for(control_settings)
    celery_procs.start_worker("w1")
    provision = task_client.send_task(PROVISION_NODE, args=["big", iid, az])
    wait_until(lambda: len(vpcnet_enis(ec2_emulator, iid)) >= 3, 60, "provisioning under way")
    # the node goes away: Kubernetes deletes it, the watcher enqueues release, the
    # cloud terminates the instance
    k8s.CoreV1Api(kube_api).delete_node("big")
    release = task_client.send_task(RELEASE_NODE, args=["big", iid])
    ec2_emulator.terminate_instance(iid)
    provision.get(timeout=120, propagate=False)
    release.get(timeout=120)
    assert ctx.state.read_node("big") is None and "big" not in ctx.state.list_nodes()
    report = gc_enis(context_for(control_settings.with_(eni_gc_grace_seconds=0)))
    assert all_cluster_enis(ec2_emulator, ctx.cluster) == [], report
