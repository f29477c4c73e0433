"""A ``vpcnet watcher`` process connects to the broker and declares the task queues as
it starts, before it leads: the first enqueue is a new cluster's first node's
provisioning, which must not wait for Celery's lazy set-up and the connection (~0.1 s).

A process of its own: kombu remembers declared queues per process (``BrokerState``),
so in the test process an earlier test's send would hide a missing declaration. kombu's
redis transport records a declared queue's binding in ``_kombu.binding.<queue>``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from tests.fixtures import watcher as fx
from tests.fixtures.watcher import queued, wait_for, watcher_env
from vpcnet.kube.client import KubeClient
from vpcnet.kube.watchstate import TaskSender
from vpcnet.settings import Settings
from vpcnet.tasknames import QUEUES
from vpcnet_sim.embedded.procs import stop_process

kube_sim, broker, watcher_settings, kube = fx.kube_sim, fx.broker, fx.watcher_settings, fx.kube

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def watcher_proc(watcher_settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, **watcher_env(watcher_settings)}
    with open(tmp_path / "watcher.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "vpcnet.cli.main", "watcher"],
                                env=env, stdout=log, stderr=log)
    yield proc
    stop_process(proc, grace=10)


def test_the_queues_are_declared_before_the_watcher_leads_and_before_any_node(
    watcher_proc: subprocess.Popen[bytes], watcher_settings: Settings, kube: KubeClient,
    broker: redis.Redis[bytes],
) -> None:
    def leads() -> bool:
        lease = kube.get_lease(watcher_settings.lease_namespace, watcher_settings.lease_name)
        return bool(lease and lease.spec.holder_identity
                    and f"_{watcher_proc.pid}_" in lease.spec.holder_identity)

    wait_for(leads, timeout=60, what="the watcher to hold the Lease")
    assert watcher_proc.poll() is None
    for q in QUEUES:
        assert broker.exists(f"_kombu.binding.{q}"), f"queue {q} not declared at start"
        assert not queued(broker, q)  # declared by the start, not by a send


def test_a_broker_that_cannot_be_reached_is_left_for_the_first_send(
    watcher_settings: Settings,
) -> None:
    """The watcher still starts (it lists, watches and leads; its sends retry later)."""
    unreachable = replace(watcher_settings, broker_url="redis://127.0.0.1:1/0")
    sender = TaskSender(unreachable)
    sender.warm()  # logs and returns
    sender.close()
