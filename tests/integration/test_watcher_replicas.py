"""Several ``vpcnet watcher`` processes: one acts; the others take over when it dies.

Which process enqueued a task is read from the message's ``origin`` header (the
sender's pid); which one leads, from the Lease's holder identity (host_pid_random).
Failover is bounded with the Lease's own timestamps, not with sleeps.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.fixtures import watcher as fx
from tests.fixtures.watcher import tasks_named, wait_for, watcher_env
from vpcnet.kube.client import KubeClient
from vpcnet.kube.leader import ElectionConfig
from vpcnet.kube.types import Lease
from vpcnet.settings import Settings
from vpcnet.tasknames import PROVISION_NODE
from vpcnet_sim.kube import KubeEmulator

kube_sim, broker, watcher_settings, kube = fx.kube_sim, fx.broker, fx.watcher_settings, fx.kube

Spawn = Callable[[], subprocess.Popen[bytes]]


@pytest.fixture
def spawn(watcher_settings: Settings, tmp_path: Path) -> Iterator[Spawn]:
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, **watcher_env(watcher_settings)}

    def start() -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"watcher{len(procs)}.log", "wb")  # the child keeps its own copy
        proc = subprocess.Popen(
            [sys.executable, "-m", "vpcnet.cli.main", "watcher"], env=env, stdout=log, stderr=log
        )
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
            proc.kill()
        proc.wait(10)


def lease(kube: KubeClient, settings: Settings) -> Lease | None:
    return kube.get_lease(settings.lease_namespace, settings.lease_name)


def holder_pid(lease: Lease | None) -> int | None:
    if lease is None or not lease.spec.holder_identity:
        return None
    return int(lease.spec.holder_identity.rsplit("_", 2)[1])


def origins(broker: redis.Redis[bytes], node: str) -> set[int]:
    return {
        int(m.group(1))
        for t in tasks_named(broker, PROVISION_NODE)
        if t.args[0] == node and (m := re.match(r"gen(\d+)@", t.origin))
    }


def provisioned_by(broker: redis.Redis[bytes], node: str) -> set[int]:
    return wait_for(lambda: origins(broker, node), timeout=30, what=f"provisioning of {node}")


def test_two_replicas_one_acts_and_the_other_takes_over_a_killed_leader(
    spawn: Spawn,
    kube_sim: KubeEmulator,
    kube: KubeClient,
    broker: redis.Redis[bytes],
    watcher_settings: Settings,
) -> None:
    a, b = spawn(), spawn()
    pid = wait_for(lambda: holder_pid(lease(kube, watcher_settings)), timeout=30, what="a leader")
    leader, standby = (a, b) if pid == a.pid else (b, a)
    assert pid == leader.pid

    for i in range(3):
        kube_sim.add_node(f"n{i}", provider_id=f"aws:///us-east-1a/i-000{i}")
    for i in range(3):
        assert provisioned_by(broker, f"n{i}") == {leader.pid}

    leader.kill()
    leader.wait(10)
    dead = lease(kube, watcher_settings)  # the dead leader's last renewal, final now
    assert dead is not None and dead.spec.renew_time is not None
    assert holder_pid(dead) == leader.pid
    new = wait_for(
        lambda: (cur := lease(kube, watcher_settings)) and holder_pid(cur) == standby.pid and cur,
        timeout=30,
        what="the standby to take over",
    )
    assert new.spec.acquire_time is not None
    assert new.spec.lease_transitions == dead.spec.lease_transitions + 1
    cfg = ElectionConfig("l", "ns", "x", lease_duration=watcher_settings.lease_duration_seconds)
    gap = (new.spec.acquire_time - dead.spec.renew_time).total_seconds()
    # Never before the lease ran out; within one lease plus the standby's poll period
    # (and a second for a loaded two-core machine) after the last renewal.
    print(f"failover: {gap:.3f}s after the last renewal (lease {cfg.lease_seconds}s)")
    assert cfg.lease_seconds <= gap <= cfg.lease_seconds + cfg.retry_period + 1.0, gap

    kube_sim.add_node("late", provider_id="aws:///us-east-1a/i-0999")
    assert provisioned_by(broker, "late") == {standby.pid}


def test_a_paused_leader_stops_acting_once_its_lease_is_gone(
    spawn: Spawn,
    kube_sim: KubeEmulator,
    kube: KubeClient,
    broker: redis.Redis[bytes],
    watcher_settings: Settings,
) -> None:
    a, b = spawn(), spawn()
    pid = wait_for(lambda: holder_pid(lease(kube, watcher_settings)), timeout=30, what="a leader")
    leader, standby = (a, b) if pid == a.pid else (b, a)
    leader.send_signal(signal.SIGSTOP)  # a long GC pause, a partition: it cannot renew
    wait_for(
        lambda: holder_pid(lease(kube, watcher_settings)) == standby.pid,
        timeout=30,
        what="the standby to take over",
    )
    kube_sim.add_node("during", provider_id="aws:///us-east-1a/i-0d01")
    assert provisioned_by(broker, "during") == {standby.pid}
    leader.send_signal(signal.SIGCONT)
    # The old leader wakes up believing nothing; its own clock says its lease is stale.
    kube_sim.add_node("after", provider_id="aws:///us-east-1a/i-0d02")
    assert provisioned_by(broker, "after") == {standby.pid}
    wait_for(
        lambda: holder_pid(lease(kube, watcher_settings)) == standby.pid, what="a stable holder"
    )
    senders = {
        int(m.group(1))
        for t in tasks_named(broker, PROVISION_NODE)
        if (m := re.match(r"gen(\d+)@", t.origin))
    }
    assert senders == {standby.pid}  # the old leader enqueued nothing, before or after


def test_sigterm_hands_the_lease_over_without_waiting_it_out(
    spawn: Spawn,
    kube: KubeClient,
    watcher_settings: Settings,
) -> None:
    a, b = spawn(), spawn()
    pid = wait_for(lambda: holder_pid(lease(kube, watcher_settings)), timeout=30, what="a leader")
    leader, standby = (a, b) if pid == a.pid else (b, a)
    before = lease(kube, watcher_settings)
    assert before is not None and before.spec.renew_time is not None
    leader.send_signal(signal.SIGTERM)
    assert leader.wait(15) == 0
    new = wait_for(
        lambda: (cur := lease(kube, watcher_settings)) and holder_pid(cur) == standby.pid and cur,
        timeout=30,
        what="the standby to take over",
    )
    assert new.spec.acquire_time is not None
    # Expiry would put the takeover a full lease after the last renewal (>= `before`).
    assert (
        new.spec.acquire_time - before.spec.renew_time
    ).total_seconds() < watcher_settings.lease_duration_seconds
