"""node_ready waits out the last moment of the pass that holds the node's lock: the agent
reports the pass's write-back while the pass is still finishing (in prefix and warm
modes, within milliseconds), and a LockHeld retry costs 2 s of a lone node's join. That
last moment holds no Kubernetes round trip: the pass's Provisioned Event goes out after
the lock is let go."""

from __future__ import annotations

import pytest

from tests.integration.control_support import agent_ready, context_for, join
from vpcnet.control.context import ControlContext
from vpcnet.control.provision import provision_node
from vpcnet.control.ready import LOCK_WAIT_SECONDS, node_ready
from vpcnet.domain import NodePhase
from vpcnet.errors import LockHeld
from vpcnet.kube.client import KubeClient
from vpcnet.kube.types import EventType
from vpcnet.settings import Settings
from vpcnet.wellknown import NOT_READY_TAINT
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator

pytestmark = pytest.mark.timeout(120)


def _provisioned_and_reported(settings: Settings, ec2: Ec2Emulator, world: World,
                              kube_emulator: KubeEmulator) -> tuple[ControlContext, KubeClient]:
    ctx = context_for(settings)
    az = world.azs[0]
    iid = join(ec2, kube_emulator, world.subnet_ids[0], az, "n1", "t3.nano")
    kube = KubeClient.from_settings(settings, component="test")
    kube.ensure_taint("n1", NOT_READY_TAINT, "NoSchedule")  # the watcher's doing
    provision_node(ctx, "n1", iid, az)
    agent_ready(ctx, "n1")
    return ctx, kube


def test_node_ready_waits_for_a_lock_released_in_its_wait(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator,
) -> None:
    ctx, kube = _provisioned_and_reported(control_settings, ec2_emulator, ec2_world, kube_emulator)
    # A pass's lock that lapses well within node_ready's wait (a pass that ends).
    ctx.state.acquire_lock("n1", LOCK_WAIT_SECONDS / 5)

    assert node_ready(ctx, "n1")

    node = kube.read_node("n1")
    assert node is not None and not node.has_taint(NOT_READY_TAINT)
    st = ctx.state.read_node("n1")
    assert st is not None and st.phase is NodePhase.READY
    kube.close()


def test_node_ready_still_retries_behind_a_pass_that_goes_on(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator,
) -> None:
    ctx, kube = _provisioned_and_reported(control_settings, ec2_emulator, ec2_world, kube_emulator)
    ctx.state.acquire_lock("n1", 60)

    with pytest.raises(LockHeld):
        node_ready(ctx, "n1")

    node = kube.read_node("n1")
    assert node is not None and node.has_taint(NOT_READY_TAINT)
    kube.close()


class _LockAtEvents(KubeClient):
    """The real client, noting whether the node's lock was held as each Event went out."""

    ctx: ControlContext | None = None
    seen: list[tuple[str, bool]]

    def emit_event(self, node_name: str, reason: str, message: str,
                   type: str = EventType.NORMAL) -> None:
        assert self.ctx is not None
        self.seen.append((reason, self.ctx.state.lock_held(node_name)))
        super().emit_event(node_name, reason, message, type)


def test_the_provisioned_event_goes_out_after_the_pass_lets_the_lock_go(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator,
) -> None:
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "n1", "t3.nano")
    kube = _LockAtEvents.from_settings(control_settings, component="test")
    kube.seen = []
    ctx = ControlContext.from_settings(control_settings, kube=kube)
    kube.ctx = ctx

    provision_node(ctx, "n1", iid, az)

    assert kube.seen == [("Provisioned", False)]
    assert [e.reason for e in kube.list_node_events("n1")] == ["Provisioned"]
    kube.close()
