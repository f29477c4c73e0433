"""The watcher driving the real control plane: watcher -> broker -> Celery worker process
-> EC2 emulator, Redis and the Kubernetes emulator. Proves the task contract end to end:
names, arguments, queue, and the taint's life from join to ready to release."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.fixtures.celery import CeleryProcs, wait_until
from tests.integration.control_support import agent_ready, context_for, join, vpcnet_enis
from vpcnet.control.context import ControlContext
from vpcnet.domain import NodePhase
from vpcnet.settings import Settings
from vpcnet.tasknames import PROVISION_NODE
from vpcnet.watcher.loop import Watcher
from vpcnet.wellknown import INSTANCE_ID_LABEL, NOT_READY_TAINT, STATUS_ANNOTATION
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator


@pytest.fixture
def watcher(control_settings: Settings) -> Iterator[Watcher]:
    w = Watcher.from_settings(control_settings)
    w.start()
    yield w
    w.stop()
    w.close()


@pytest.fixture
def ctx(control_settings: Settings) -> ControlContext:
    return context_for(control_settings)


def phase(ctx: ControlContext, node: str) -> NodePhase | None:
    st = ctx.state.read_node(node)
    return st.phase if st is not None else None


def status(ctx: ControlContext, node: str) -> dict[str, Any]:
    """The node's vpcnet.io/status annotation, as the watcher keeps it."""
    obj = ctx.kube.read_node(node)
    raw = obj.annotations.get(STATUS_ANNOTATION) if obj else None
    return dict(json.loads(raw)) if raw else {}


def test_join_ready_and_delete_through_a_real_worker(
    control_settings: Settings,
    celery_procs: CeleryProcs,
    ec2_emulator: Ec2Emulator,
    ec2_world: World,
    kube_emulator: KubeEmulator,
    watcher: Watcher,
    ctx: ControlContext,
) -> None:
    celery_procs.start_worker("w1")
    iids = {
        name: join(
            ec2_emulator, kube_emulator, ec2_world.subnet_ids[i], ec2_world.azs[i], name, "m5.large"
        )
        for i, name in enumerate(("a", "b"))
    }
    for name, iid in iids.items():
        wait_until(lambda n=name: phase(ctx, n) is NodePhase.PROVISIONED, 60, f"{name} provisioned")
        node = ctx.kube.read_node(name)
        assert node is not None and node.has_taint(NOT_READY_TAINT, "NoSchedule")
        assert node.labels[INSTANCE_ID_LABEL] == iid
        assert len(vpcnet_enis(ec2_emulator, iid)) == 3  # m5.large: 3 ENIs in full mode

    agent_ready(ctx, "a")  # the agent's report: Redis hash + agent-ready message
    wait_until(lambda: phase(ctx, "a") is NodePhase.READY, 60, "a ready")
    node_a = ctx.kube.read_node("a")
    assert node_a is not None and not node_a.has_taint(NOT_READY_TAINT)
    summary = wait_until(
        lambda: status(ctx, "a").get("phase") == "ready" and status(ctx, "a"), 60, "a's status"
    )
    assert (
        summary["enis"] == 3
        and summary["agentReady"] is True
        and summary["instanceId"] == iids["a"]
    )
    node_b = ctx.kube.read_node("b")
    assert node_b is not None and node_b.has_taint(NOT_READY_TAINT)  # its agent said nothing

    k8s.CoreV1Api(kube_emulator.api_client()).delete_node("b")
    wait_until(lambda: ctx.state.read_node("b") is None, 60, "b's state released")
    assert len(vpcnet_enis(ec2_emulator, iids["b"])) == 1  # only the primary ENI is left
    assert phase(ctx, "a") is NodePhase.READY
    assert watcher.stats.enqueued[PROVISION_NODE] == 2
