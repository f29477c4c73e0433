"""A provisioning pass serves the demand that arrives while it holds the node's lock.

A burst's ADDs reach the agent over a second or more, and its demand reports grow in
steps; the pass that took the lock for the first report is still making a new ENI
(~3 s at AWS's latencies) when the rest arrive. That pass looks again before it lets
the lock go and runs another round for what came meanwhile; a pass sent for the later
report hands its work to it instead of meeting LockHeld and retrying 2 s later.

Real redis-server, the EC2 emulator at AWS's latencies (a chain's CreateNetworkInterface
made slower, so that the demand reliably changes while it is in flight), and for the
task-level test a real Celery worker. Ordering comes from the emulator's call log and
the order of events in the test, never from durations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future

import pytest
from celery import Celery

from tests.fixtures.celery import CeleryProcs, wait_until
from tests.integration.control_support import (
    agent_ready,
    assert_redis_equals_ec2,
    context_for,
    join,
    pool_counts,
    vpcnet_enis,
)
from vpcnet.control.context import ControlContext
from vpcnet.control.provision import Outcome, provision_node
from vpcnet.control.ready import node_ready
from vpcnet.domain import Mode
from vpcnet.settings import Settings
from vpcnet.tasknames import PROVISION_NODE
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.ec2.config import Ec2SimConfig, Latency
from vpcnet_sim.kube import KubeEmulator

pytestmark = pytest.mark.timeout(180)

CREATE = "CreateNetworkInterface"
ASSIGN = "AssignPrivateIpAddresses"
DESCRIBE = "DescribeInstances"
WARM = 4
FIRST_DEMAND = 10  # the primary's free slots and one new ENI
LATER_DEMAND = 20  # needs the node's last ENI as well (m5.large: 3 ENIs x 9 pod IPs)


def _warm(settings: Settings) -> Settings:
    # No ENIs held ahead: the demand needs new ENIs' chains (test_control_enis_ahead
    # covers the default, where it needs assigns only).
    return settings.with_(mode=Mode.WARM, warm_ip_target=WARM, minimum_ip_target=6,
                          ip_cooldown_seconds=30, warm_attached_enis=0)


@pytest.fixture
def ctx(control_settings: Settings) -> Iterator[ControlContext]:
    yield context_for(_warm(control_settings))


def _ready_node(ctx: ControlContext, ec2: Ec2Emulator, world: World,
                kube: KubeEmulator) -> tuple[str, str]:
    """A READY m5.large node; EC2 at AWS's latencies from here on, a chain's first call
    slow enough (1 s) that the test can change the demand while it is in flight."""
    az = world.azs[0]
    iid = join(ec2, kube, world.subnet_ids[0], az, "w", "m5.large")
    provision_node(ctx, "w", iid, az)
    agent_ready(ctx, "w")
    assert node_ready(ctx, "w")
    aws = Ec2SimConfig.aws_like().latency
    ec2.set_config(preset="aws", latency={**aws, CREATE: Latency(1.0)})
    ec2.reset_counters()
    return iid, az


def _publish_demand(ctx: ControlContext, waiting: int) -> None:
    """The agent's demand report (``vpcnet.agent.redis_sync``), as it writes it."""
    k = ctx.state.node_keys("w")
    ctx.state.redis.hset(k.demand, mapping={"waiting": waiting, "pool": 0,
                                            "at": f"{time.time():.6f}"})


def _in_background(ctx: ControlContext, iid: str, az: str) -> Future[Outcome]:
    result: Future[Outcome] = Future()

    def run() -> None:
        try:
            result.set_result(provision_node(ctx, "w", iid, az))
        except BaseException as e:
            result.set_exception(e)

    threading.Thread(target=run, daemon=True).start()
    return result


def _create_in_flight(ec2: Ec2Emulator) -> bool:
    return bool(ec2.calls(CREATE))


def _assert_served(ctx: ControlContext, ec2: Ec2Emulator, iid: str) -> None:
    """Two chains, the second after the first was answered (a second round of the same
    pass), each with its own ClientToken (two ENIs, not one replayed); the pool covers
    the later demand and the warm target; Redis holds what EC2 holds."""
    creates = ec2.calls(CREATE)
    assert len(creates) == 2, creates
    assert creates[1].received > creates[0].answered
    enis = vpcnet_enis(ec2, iid)
    assert len(enis) == 3 and len({e["eni_id"] for e in enis}) == 3
    pool, free = pool_counts(ctx, "w")
    assert pool >= LATER_DEMAND + WARM and free == pool
    st = ctx.state.read_node("w")
    assert st is not None and st.record.pass_epoch == ""
    assert_redis_equals_ec2(st, enis)


def test_demand_that_grows_while_the_pass_acts_is_served_by_that_pass(
    ctx: ControlContext, ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    iid, az = _ready_node(ctx, ec2_emulator, ec2_world, kube_emulator)
    _publish_demand(ctx, FIRST_DEMAND)
    first = _in_background(ctx, iid, az)
    wait_until(lambda: _create_in_flight(ec2_emulator), 30, "the pass's first chain")
    # More ADDs arrive; the agent rewrites its report without publishing (the pool has
    # not changed): nobody sends a pass for it.
    _publish_demand(ctx, LATER_DEMAND)
    out = first.result(timeout=60)

    _assert_served(ctx, ec2_emulator, iid)
    assert out.plan_calls.get(CREATE) == 2, out.plan_calls  # both chains: this pass's
    assert out.rounds == 2 and not out.again and not out.handed_over, out
    assert not ctx.state.lock_held("w")
    # The second round planned from what the first left (``vpcnet.control.regather``):
    # no DescribeInstances of its own, and one new ENI more, not a replay (_assert_served).
    describes = ec2_emulator.calls(DESCRIBE)
    assert len(describes) == 1 and describes[0].answered < ec2_emulator.calls(CREATE)[0].received
    assert out.plan_calls.get(DESCRIBE) == 1, out.plan_calls  # the calls made, not one per round


def test_a_pass_that_finds_the_lock_held_hands_its_work_to_the_holder(
    ctx: ControlContext, ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    iid, az = _ready_node(ctx, ec2_emulator, ec2_world, kube_emulator)
    _publish_demand(ctx, FIRST_DEMAND)
    first = _in_background(ctx, iid, az)
    wait_until(lambda: _create_in_flight(ec2_emulator), 30, "the pass's first chain")
    _publish_demand(ctx, LATER_DEMAND)

    # The pass the watcher sends for the later report: it meets the held lock and
    # returns at once, its work handed over (no LockHeld, no retry), while the holder
    # is still in its first chain.
    second = provision_node(ctx, "w", iid, az)
    assert second.handed_over and second.rounds == 0 and not second.written, second
    assert ctx.state.lock_held("w") and not first.done()
    assert len(ec2_emulator.calls(CREATE)) == 1

    out = first.result(timeout=60)
    assert out.rounds == 2 and not out.again, out
    _assert_served(ctx, ec2_emulator, iid)
    assert not ctx.state.lock_held("w")


def test_the_worker_hands_a_pass_over_instead_of_retrying_it(
    control_settings: Settings, celery_procs: CeleryProcs, task_client: Celery,
    ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    """Both passes as Celery tasks on a real worker: the second one succeeds at its first
    run (handed over), the first one's second round serves its demand."""
    ctx = context_for(_warm(control_settings))
    iid, az = _ready_node(ctx, ec2_emulator, ec2_world, kube_emulator)
    celery_procs.settings = _warm(control_settings)
    celery_procs.start_worker("w1")
    _publish_demand(ctx, FIRST_DEMAND)
    first = task_client.send_task(PROVISION_NODE, args=["w", iid, az])
    wait_until(lambda: _create_in_flight(ec2_emulator), 60, "the first task's chain")
    _publish_demand(ctx, LATER_DEMAND)
    second = task_client.send_task(PROVISION_NODE, args=["w", iid, az])

    handed = second.get(timeout=60)
    assert len(ec2_emulator.calls(CREATE)) == 1  # answered while the first still acts
    out = first.get(timeout=60)
    _assert_served(ctx, ec2_emulator, iid)
    log = celery_procs.log("w1").read_text()
    assert "task retries" not in log, log[-3000:]
    assert handed.get("handed_over") and handed.get("rounds") == 0, handed
    assert out.get("rounds") == 2 and not out.get("again"), out
