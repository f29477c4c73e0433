"""Beat's lock on Redis Sentinel: through a failover that loses acknowledged writes (the
lock's last renewals among them), the schedule goes on from exactly one beat, judged by
the origin of the task messages on the new primary, not by the beats' own logs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.fixtures.celery import CeleryProcs, wait_until
from tests.fixtures.sentinel import SENTINEL_BROKER_DB, SentinelGroup
from tests.fixtures.watcher import QueuedTask, queued
from vpcnet.settings import Settings
from vpcnet.state.keys import ClusterKeys

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def beats(sentinel_settings: Settings, tmp_path: Path) -> Iterator[CeleryProcs]:
    procs = CeleryProcs(sentinel_settings.with_(
        reconcile_interval_seconds=1.0, warm_pool_interval_seconds=1.0, gc_interval_seconds=3600.0,
        lease_duration_seconds=3.0,
    ), tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


def scans(group: SentinelGroup) -> list[QueuedTask]:
    """The scan queue as the current primary holds it (no worker consumes it here)."""
    client = redis.Redis(port=group.primary.port, password=group.password, db=SENTINEL_BROKER_DB,
                         socket_timeout=5)
    try:
        return queued(client, "vpcnet")
    finally:
        client.close()


def senders(tasks: list[QueuedTask], beats: CeleryProcs) -> set[str]:
    by_pid = {f"gen{p.pid}@": name for name, p in beats.procs.items()}
    return {next((n for pre, n in by_pid.items() if t.origin.startswith(pre)), t.origin)
            for t in tasks}


def test_one_beat_keeps_the_schedule_through_a_lossy_failover(
    sentinels: SentinelGroup, sentinel_settings: Settings, beats: CeleryProcs,
    capsys: pytest.CaptureFixture[str],
) -> None:
    beats.start_beat("b1")
    beats.start_beat("b2")
    before = wait_until(lambda: len(t := scans(sentinels)) >= 4 and t, 30, "beat scheduling")
    assert len(senders(before, beats)) == 1, senders(before, beats)

    failover = sentinels.lose_writes_in_failover(window=1.0)
    assert failover.marker_acked_replicas == 0 and not failover.marker_on_new_primary
    rejoin = time.monotonic() - failover.promoted_at  # the old primary's resync

    # Scheduling goes on on the new primary.
    start = len(scans(sentinels))
    t0 = time.monotonic()
    wait_until(lambda: len(scans(sentinels)) >= start + 3, 30, "beat scheduling after failover")
    three = time.monotonic() - t0
    # Once the lease has settled, every message comes from one beat only.
    time.sleep(sentinel_settings.lease_duration_seconds * 2)
    mark = len(scans(sentinels))
    time.sleep(6)
    fresh = scans(sentinels)[mark:]
    assert len(fresh) >= 4 and len(senders(fresh, beats)) == 1, senders(fresh, beats)
    # ...and it is the beat holding the lock on the new primary.
    client = redis.Redis(port=failover.new_primary_port, password=sentinels.password, socket_timeout=5)
    try:
        assert client.get(ClusterKeys(sentinel_settings.cluster_name).beat_lock) is not None
    finally:
        client.close()
    assert all(p.poll() is None for p in beats.procs.values()), "a beat exited"
    with capsys.disabled():
        print(f"\nbeat after failover: promotion {failover.failover_seconds}s, old primary "
              f"resynced {rejoin:.1f}s later, then 3 more scans in {three:.1f}s; "
              f"leader {senders(fresh, beats)}")
