"""The control plane on Redis Sentinel, through failovers that lose acknowledged writes.

A real Celery worker process (broker and result backend on kombu's/Celery's sentinel
transport), the watcher (its dedup claims, its agent-ready subscription and its task
sender), and the workers' state (``ControlState``) all follow the failover without a
restart. A task reserved by the worker when the primary goes does not wait for the
broker's visibility timeout (left at its production value, 1 h): beat's reconcile
re-derives the work from EC2 and Kubernetes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from tests.fixtures.celery import CeleryProcs, wait_until
from tests.fixtures.sentinel import SENTINEL_BROKER_DB, SentinelGroup
from tests.integration.control_support import (
    agent_ready,
    all_cluster_enis,
    assert_redis_equals_ec2,
    context_for,
    join,
    vpcnet_enis,
)
from vpcnet.control.context import ControlContext
from vpcnet.domain import NodePhase
from vpcnet.settings import Settings
from vpcnet.state.broker import celery_broker_config
from vpcnet.state.keys import ClusterKeys
from vpcnet.tasknames import PROVISION_NODE, RECONCILE_ALL, SCAN_QUEUE
from vpcnet.watcher.loop import Watcher
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.ec2.config import Latency
from vpcnet_sim.kube import KubeEmulator

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def procs(sentinel_settings: Settings, tmp_path: Path) -> Iterator[CeleryProcs]:
    p = CeleryProcs(sentinel_settings, tmp_path)
    try:
        yield p
    finally:
        p.stop_all()


def task_app(settings: Settings) -> Celery:
    """A Celery client configured as the workers are (the sentinel transport)."""
    app = Celery("vpcnet-test", set_as_current=False)
    app.conf.update(**celery_broker_config(settings.broker, settings.broker_visibility_timeout_seconds),
                    task_serializer="json", accept_content=["json"], result_serializer="json",
                    task_default_queue="ec2")
    return app


def phase(ctx: ControlContext, node: str) -> NodePhase | None:
    st = ctx.state.read_node(node)
    return st.phase if st is not None else None


def on_server(group: SentinelGroup, port: int, db: int = 0) -> redis.Redis[bytes]:
    return redis.Redis(port=port, password=group.password, db=db, socket_timeout=5)


def test_worker_watcher_and_state_follow_a_failover_that_loses_writes(
    sentinels: SentinelGroup, sentinel_settings: Settings, procs: CeleryProcs,
    ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    worker = procs.start_worker("w1", concurrency=4)
    watcher = Watcher.from_settings(sentinel_settings)
    watcher.start()
    app = task_app(sentinel_settings)
    ctx = context_for(sentinel_settings)  # one client for the whole test, as a worker has
    try:
        app.send_task(RECONCILE_ALL, queue=SCAN_QUEUE).get(timeout=60)
        iid_a = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], ec2_world.azs[0],
                     "a", "m5.large")
        wait_until(lambda: phase(ctx, "a") is NodePhase.PROVISIONED, 60, "a provisioned")

        # A client keeps sending work and waiting for its result throughout.
        done: list[float] = []
        stop = threading.Event()

        def keep_sending() -> None:
            while not stop.is_set():
                try:
                    app.send_task(RECONCILE_ALL, queue=SCAN_QUEUE).get(timeout=3)
                    done.append(time.monotonic())
                except Exception:  # sent into the lost window, or during the failover
                    pass

        sender = threading.Thread(target=keep_sending, daemon=True)
        sender.start()
        failover = sentinels.lose_writes_in_failover(window=1.0)
        after = failover.promoted_at
        assert failover.marker_acked_replicas == 0
        assert not failover.marker_on_new_primary and not failover.marker_on_old_primary

        # The same worker process takes new work and stores its result on the new primary.
        wait_until(lambda: any(t > after for t in done), 60, "a task's result after the failover")
        stop.set()
        sender.join(10)
        first_task = min(t for t in done if t > after) - after
        # The watcher sees a new node, claims it and enqueues on the new primary; the
        # worker provisions it and its state lands on the new primary.
        iid_b = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[1], ec2_world.azs[1],
                     "b", "m5.large")
        wait_until(lambda: phase(ctx, "b") is NodePhase.PROVISIONED, 90, "b provisioned after failover")
        joined = time.monotonic() - after
        new_primary = on_server(sentinels, failover.new_primary_port)
        try:
            keys = ClusterKeys(sentinel_settings.cluster_name)
            assert new_primary.hget(keys.node("b").node, "phase") == b"provisioned"
            assert new_primary.exists(keys.node("b").enis)
        finally:
            new_primary.close()
        st = ctx.state.read_node("b")
        assert st is not None
        assert_redis_equals_ec2(st, vpcnet_enis(ec2_emulator, iid_b))
        # The agent-ready subscription resumed: the report of a's agent, published on the
        # new primary, makes a ready.
        agent_ready(ctx, "a")
        wait_until(lambda: phase(ctx, "a") is NodePhase.READY, 60, "a ready after failover")
        assert len(vpcnet_enis(ec2_emulator, iid_a)) == 3

        assert worker.poll() is None, "the worker exited"
        assert procs.procs["w1"].pid == worker.pid  # never restarted
        log = procs.log("w1").read_text(errors="replace")
        assert "Unrecoverable error" not in log
        with capsys.disabled():
            print(f"\nsentinel failover: {failover.failover_seconds}s to promote; first task "
                  f"result {first_task:.1f}s after the promotion; a node joined after it was "
                  f"provisioned {joined:.1f}s after the promotion")
    finally:
        watcher.stop()
        watcher.close()
        app.close()


def test_a_task_reserved_at_failover_does_not_wait_for_the_visibility_timeout(
    sentinels: SentinelGroup, sentinel_settings: Settings, procs: CeleryProcs,
    ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What happens to a task reserved when the primary goes, decided: nothing waits for
    it. A provisioning pass is under way (EC2 attaches slowed to 8 s) and its broker
    reservation has reached the replica; the worker dies with it (kill -9, restarted a
    moment later) and the primary is lost with the writes of the last second. The
    reservation survives on the new primary, so kombu would hand the task out again
    only after the visibility timeout (3600 s here, as in production). Beat's reconcile
    re-derives the work instead (the node's lock expires, the pass is sent anew): the
    node is provisioned with exactly its ENIs, none twice and none left unattached,
    while the old reservation still waits."""
    settings = sentinel_settings.with_(
        reconcile_interval_seconds=3.0, broker_visibility_timeout_seconds=3600,
        task_time_limit_seconds=300, gc_interval_seconds=3600.0,
    )
    procs.settings = settings
    # Slow enough that the pass is still running while the test watches its reservation
    # reach the replica: the ENI chains run in parallel, so the pass lasts one attach.
    ec2_emulator.set_config(latency={"AttachNetworkInterface": Latency(8.0)})
    procs.start_worker("w1", concurrency=4)
    procs.start_beat("beat")
    ctx = context_for(settings)
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], ec2_world.azs[0], "n1", "m5.large")
    # Created, not attached yet: the pass is in its (parallel) attaches, still reserved.
    wait_until(lambda: len(all_cluster_enis(ec2_emulator, ctx.cluster)) >= 1 or None, 60,
               "the pass attaching ENIs")
    replica = redis.Redis(port=sentinels.replica.port, password=sentinels.password,
                          db=SENTINEL_BROKER_DB, socket_timeout=5)
    try:
        wait_until(lambda: replica.hlen("unacked") >= 1, 10, "the reservation replicated")
    finally:
        replica.close()
    procs.kill("w1")

    failover = sentinels.lose_writes_in_failover(window=1.0)
    assert failover.marker_acked_replicas == 0 and not failover.marker_on_new_primary
    ec2_emulator.set_config(latency={})
    procs.start_worker("w1", concurrency=4)  # the Deployment's restart

    wait_until(lambda: phase(ctx, "n1") is NodePhase.PROVISIONED, 120, "n1 provisioned after failover")
    converged = time.monotonic() - failover.promoted_at
    st = ctx.state.read_node("n1")
    assert st is not None
    assert_redis_equals_ec2(st, vpcnet_enis(ec2_emulator, iid))
    assert len(vpcnet_enis(ec2_emulator, iid)) == 3  # m5.large, full mode: none twice
    assert all(e["status"] == "in-use" for e in all_cluster_enis(ec2_emulator, ctx.cluster))
    broker = on_server(sentinels, failover.new_primary_port, SENTINEL_BROKER_DB)
    try:
        waiting = broker.hlen("unacked")
    finally:
        broker.close()
    assert waiting >= 1, "the dead worker's reservation is still waiting for its timeout"
    with capsys.disabled():
        print(f"\nreserved at failover: provisioned {converged:.1f}s after the promotion "
              f"(promotion took {failover.failover_seconds}s; {waiting} reservation(s) still "
              "waiting for the 3600 s visibility timeout)")


def test_a_claim_whose_clear_the_failover_lost_does_not_keep_reconcile_away(
    sentinels: SentinelGroup, sentinel_settings: Settings, procs: CeleryProcs,
    ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A scan's enqueue claim (``queued:<task>``) is cleared by the task when it starts.
    Here the claim and the state to repair (the node's ENI records, gone) reach the
    replica, and the clear is written only to the primary that is then lost: the new
    primary holds a claim for a task that already ran. Reconcile must still repair the
    node, long before the visibility timeout (3600 s) that bounded the claim's life."""
    settings = sentinel_settings.with_(
        reconcile_interval_seconds=2.0, broker_visibility_timeout_seconds=3600,
        task_time_limit_seconds=300, gc_interval_seconds=3600.0,
    )
    procs.settings = settings
    ctx = context_for(settings)
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], ec2_world.azs[0], "n1", "m5.large")
    procs.start_worker("w1", concurrency=4)
    task_app(settings).send_task(PROVISION_NODE, args=["n1", iid, ec2_world.azs[0]])
    wait_until(lambda: phase(ctx, "n1") is NodePhase.PROVISIONED, 60, "n1 provisioned")
    keys = ClusterKeys(settings.cluster_name).node("n1")
    claim = "queued:vpcnet.provision_node"
    primary = sentinels.direct(sentinels.primary)
    primary.hset(keys.node, claim, f"{time.time():.3f}")  # a scan enqueued a pass...
    primary.delete(keys.enis)  # ...to repair this
    assert primary.execute_command("WAIT", 1, 2000) == 1  # both on the replica
    procs.start_beat("beat")

    failover = sentinels.lose_writes_in_failover(
        during=lambda: primary.hdel(keys.node, claim))  # the pass started: lost
    primary.close()
    assert failover.marker_acked_replicas == 0 and not failover.marker_on_new_primary
    new_primary = on_server(sentinels, failover.new_primary_port)
    try:
        assert new_primary.hexists(keys.node, claim), "the clear was lost with the primary"
    finally:
        new_primary.close()

    wait_until(lambda: (st := ctx.state.read_node("n1")) is not None and len(st.enis) == 3,
               120, "reconcile restoring n1's ENIs")
    repaired = time.monotonic() - failover.promoted_at
    st = ctx.state.read_node("n1")
    assert st is not None
    assert_redis_equals_ec2(st, vpcnet_enis(ec2_emulator, iid))
    with capsys.disabled():
        print(f"\nlost claim clear: n1 repaired {repaired:.1f}s after the promotion "
              "(visibility timeout 3600 s)")
