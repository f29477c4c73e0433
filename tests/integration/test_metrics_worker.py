"""A real Celery worker serves /metrics and logs JSON: EC2 calls, task outcomes and
retries, provisioning time and queue depth, scraped over HTTP after a provisioning task."""

from __future__ import annotations

import time

import pytest
import redis
from celery import Celery
from prometheus_client.registry import CollectorRegistry

from tests.fixtures.celery import CeleryProcs, wait_until
from tests.fixtures.metrics import Scrape, json_lines, scrape, try_scrape
from tests.fixtures.redis import RedisServer, free_port
from tests.integration.control_support import context_for, join
from vpcnet.observability.celery_hooks import ENQUEUED_HEADER
from vpcnet.observability.collectors import QueueCollector
from vpcnet.settings import Settings
from vpcnet.tasknames import EC2_QUEUE, PROVISION_NODE, RECONCILE_ALL, SCAN_QUEUE
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator

pytestmark = pytest.mark.timeout(180)

SECRET = "s3cret-never-logged"
ENQUEUED_AGO = 100.0  # the message says it was first enqueued this long ago


def _with_password(url: str) -> str:
    # The session's redis-server has a passwordless default user: AUTH with any password
    # succeeds, so the URL can carry one that must never reach a log line.
    return url.replace("redis://", f"redis://default:{SECRET}@", 1)


def test_worker_metrics_and_json_logs_after_a_provisioning_task(
    control_settings: Settings, celery_procs: CeleryProcs, task_client: Celery,
    ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
    redis_server: RedisServer,
) -> None:
    port = free_port()
    settings = control_settings.with_(
        metrics_port=port,
        redis_url=_with_password(control_settings.redis_url),
        broker_url=_with_password(control_settings.broker),
    )
    celery_procs.settings = settings
    ctx = context_for(control_settings)
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "n1", "m5.large")
    # Another worker holds the node: the first attempt must retry (LockHeld).
    lock = ctx.state.acquire_lock("n1", 60)
    celery_procs.start_worker("w1")
    enqueued = time.time() - ENQUEUED_AGO
    result = task_client.send_task(
        PROVISION_NODE, args=["n1", iid, az],
        headers={ENQUEUED_HEADER: f"{enqueued:.3f}"},
    )
    wait_until(lambda: (m := try_scrape(port)) is not None
               and m.total("vpcnet_task_retries_total") >= 1, 60, "a retry")
    ctx.state.release_lock("n1", lock)
    out = result.get(timeout=60)
    assert out["phase"] == "provisioned" and out["written"]
    task = PROVISION_NODE
    # The result is stored before the worker's post-run hook counts the run.
    def counted() -> Scrape | None:
        m = scrape(port)
        return m if m.total("vpcnet_tasks_total", outcome="success") else None

    m = wait_until(counted, 30, "the run counted")
    finished = time.time()
    assert m.value("vpcnet_task_retries_total", task=task, reason="LockHeld") >= 1
    assert m.value("vpcnet_tasks_total", task=task, outcome="success") == 1
    retries = m.value("vpcnet_tasks_total", task=task, outcome="retry")
    assert retries >= 1
    assert m.value("vpcnet_task_duration_seconds_count", task=task) == 1 + retries
    assert m.value("vpcnet_tasks_active", task=task) == 0

    # Provisioning time runs from the first enqueue (the header survived the retries).
    assert m.value("vpcnet_node_provisioning_seconds_count") == 1
    assert ENQUEUED_AGO <= m.value("vpcnet_node_provisioning_seconds_sum") <= finished - enqueued

    # EC2 calls: the same counts the cluster-wide Redis counters hold (one worker here).
    totals = ctx.recorder.totals()
    calls = m.by("vpcnet_ec2_calls_total", "action")
    assert calls == {a: float(n) for a, n in totals["calls"].items()}
    assert calls["CreateNetworkInterface"] >= 1 and calls["AttachNetworkInterface"] >= 1
    assert m.value("vpcnet_ec2_calls_total", action="DescribeInstances", outcome="ok") >= 1
    for action, n in calls.items():
        assert m.value("vpcnet_ec2_call_duration_seconds_count", action=action) == n
        assert m.value("vpcnet_ec2_ratelimit_wait_seconds_count", action=action) == n
    assert m.total("vpcnet_ec2_errors_total") == sum(totals.get("errors", {}).values()) + sum(
        totals.get("throttled", {}).values()
    )

    # Queue depth is read from the broker on each scrape: nothing is waiting now.
    assert m.value("vpcnet_queue_broker_up") == 1
    assert m.value("vpcnet_queue_depth", queue=EC2_QUEUE) == 0
    assert m.value("vpcnet_queue_depth", queue=SCAN_QUEUE) == 0

    # Logs: one JSON object per line, task and node bound; the password never appears.
    log = celery_procs.log("w1").read_text()
    assert SECRET not in log
    lines = json_lines(log)
    assert lines and all(line["component"] == "worker" for line in lines)
    mine = [line for line in lines if line.get("task_id") == result.id]
    assert any(line["event"] == "provisioning pass" for line in mine)
    assert {line.get("node") for line in mine} == {"n1"}
    assert {line.get("task") for line in mine} == {task}
    assert any(line["event"] == "task retries" for line in mine)
    # Celery's own records go through the same formatter.
    assert any(line["event"].endswith("ready.") for line in lines)


def test_queue_depth_counts_waiting_tasks_per_queue(
    control_settings: Settings, task_client: Celery, broker_db: object
) -> None:
    """No worker: what is sent waits in the broker and the collector reads it there."""

    def client() -> redis.Redis[bytes]:
        return redis.Redis.from_url(control_settings.broker)

    registry = CollectorRegistry()
    registry.register(QueueCollector(client, (EC2_QUEUE, SCAN_QUEUE)))
    for i in range(3):
        task_client.send_task(PROVISION_NODE, args=[f"n{i}", "i-0", "az"], queue=EC2_QUEUE)
    for _ in range(2):
        task_client.send_task(RECONCILE_ALL, queue=SCAN_QUEUE, priority=9)
    m = Scrape.of(registry)
    assert m.value("vpcnet_queue_depth", queue=EC2_QUEUE) == 3
    assert m.value("vpcnet_queue_depth", queue=SCAN_QUEUE) == 2
    assert m.value("vpcnet_queue_unacked") == 0

    registry_down = CollectorRegistry()
    registry_down.register(QueueCollector(lambda: redis.Redis(port=free_port()), (EC2_QUEUE,)))
    down = Scrape.of(registry_down)
    assert down.value("vpcnet_queue_broker_up") == 0
    assert not list(down.select("vpcnet_queue_depth"))
