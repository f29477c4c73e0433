"""node_ready never waits behind provisioning for a worker thread: with every thread of
the EC2 workers held by a task that does not end (a join storm's provisioning passes
waiting for EC2), a node_ready on the scan queue still runs, on the workers started as
``vpcnet.tasknames.WORKER_POOLS`` says (what the worker Deployment runs).

With one worker consuming both queues (the layout before), the worker takes no message
while its threads are busy (acks late, prefetch one per thread), so the node_ready waits
until a provisioning task ends."""

from __future__ import annotations

import uuid

import redis
from celery import Celery

from tests.fixtures.blocking_tasks import BLOCK
from tests.fixtures.celery import CeleryProcs, wait_until
from tests.fixtures.redis import RedisServer
from vpcnet.settings import Settings
from vpcnet.tasknames import EC2_QUEUE, NODE_READY, SCAN_QUEUE, WORKER_POOLS

EC2_THREADS = 2
BLOCK_SECONDS = 90.0  # under the time limit below: the blockers end only when released


def test_node_ready_runs_while_every_provisioning_thread_is_busy(
    control_settings: Settings, celery_procs: CeleryProcs, task_client: Celery,
    redis_server: RedisServer,
) -> None:
    # The fixture's time limit (15 s, soft 5 s) would end the blockers and free a thread.
    celery_procs.settings = control_settings.with_(
        task_time_limit_seconds=120, broker_visibility_timeout_seconds=150)
    for pool in WORKER_POOLS:
        threads = EC2_THREADS if EC2_QUEUE in pool.queues else pool.concurrency
        celery_procs.start_worker(pool.name, threads, queues=pool.queues,
                                  include=("tests.fixtures.blocking_tasks",))
    client: redis.Redis[bytes] = redis.Redis(port=redis_server.port)
    started, release = f"test:started:{uuid.uuid4().hex}", f"test:release:{uuid.uuid4().hex}"
    try:
        blockers = [
            task_client.send_task(BLOCK, args=[redis_server.url, started, release, BLOCK_SECONDS],
                                  queue=EC2_QUEUE)
            for _ in range(EC2_THREADS + 1)  # one more waits in the queue, as in a storm
        ]
        wait_until(lambda: client.llen(started) >= EC2_THREADS, 30,
                   "every EC2 worker thread to be taken")
        ready = task_client.send_task(NODE_READY, args=["no-such-node"], queue=SCAN_QUEUE)
        # A hang guard, not a timing: without a worker of its own node_ready would wait
        # for the blockers (90 s).
        wait_until(ready.ready, 30, "node_ready to run while provisioning holds every thread")
        assert ready.get(timeout=5) is False  # the node is unknown: nothing to do
        assert client.llen(started) == EC2_THREADS  # the blockers still hold the threads
    finally:
        client.rpush(release, *["1"] * (EC2_THREADS + 1))
        client.close()
    for b in blockers:
        assert b.get(timeout=30) is True
