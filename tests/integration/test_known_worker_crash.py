"""The worker exit the chaos run files as a known upstream bug, made to happen for real.

A real ``celery -A workers worker`` holds one ETA'd task (unacknowledged, as a retry's
countdown leaves it) when its redis-server is killed -9: with the installed Celery/kombu
it exits on the crash ``vpcnet_sim.embedded.known_crashes`` describes, and its log is
recognised as that crash, in that outage and no other. The same worker stopped for
another reason is not filed as known. If an upgrade fixes the bug, the first test fails:
then the known-crash filing goes (every worker exit becomes a finding again).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from tests.fixtures.celery import CeleryProcs, wait_until
from vpcnet.settings import Settings
from vpcnet.tasknames import GC_ENIS
from vpcnet_sim.embedded.known_crashes import (
    KOMBU_RESTORE_AFTER_BROKER_LOSS,
    Outage,
    judge,
    match_known_crash,
)
from vpcnet_sim.embedded.procs import RedisServer


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone: it gets killed (never the session's)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def procs(own_redis: RedisServer, tmp_path: Path, cluster_name: str) -> Iterator[CeleryProcs]:
    base = own_redis.url.rsplit("/", 1)[0]
    settings = Settings(cluster_name=cluster_name, redis_url=f"{base}/0", broker_url=f"{base}/1",
                        ec2_endpoint_url="http://127.0.0.1:9", worker_concurrency=2)
    out = CeleryProcs(settings, tmp_path)
    yield out
    out.stop_all()


def _hold_an_eta_task(procs: CeleryProcs) -> None:
    client = Celery("known-crash-test", broker=procs.settings.broker, set_as_current=False)
    client.conf.update(task_serializer="json", accept_content=["json"], task_default_queue="ec2")
    try:
        client.send_task(GC_ENIS, countdown=600)
    finally:
        client.close()

    def holding() -> bool:
        lines = procs.log("w1").read_text(errors="replace").splitlines()
        return any("Task vpcnet.gc_enis[" in line and "] received" in line for line in lines)

    wait_until(holding, 30, "the worker holding the ETA task")


def test_broker_loss_with_an_unacked_task_is_the_known_crash(own_redis: RedisServer, procs: CeleryProcs) -> None:
    worker = procs.start_worker("w1", concurrency=2)
    _hold_an_eta_task(procs)
    down_at = time.time()
    own_redis.kill()
    wait_until(lambda: worker.poll() is not None, 60, "the worker's exit")
    log = procs.log("w1").read_text(errors="replace")
    crash = match_known_crash("w1", log)
    assert crash is not None, log[-3000:]
    assert crash.signature == KOMBU_RESTORE_AFTER_BROKER_LOSS
    up_at = time.time()  # Redis stays down; the outage ends here at the latest
    assert judge([crash], [Outage(down_at, up_at)]) == []
    assert judge([crash], [Outage(down_at - 100, down_at - 90)]) != []  # not in that outage


def test_a_worker_stopped_otherwise_is_not_filed_as_known(procs: CeleryProcs) -> None:
    procs.start_worker("w1", concurrency=2)
    _hold_an_eta_task(procs)
    procs.stop("w1")
    assert match_known_crash("w1", procs.log("w1").read_text(errors="replace")) is None
