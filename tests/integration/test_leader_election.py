"""Lease election between in-process candidates against the Kubernetes emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures import watcher as fx
from tests.fixtures.watcher import wait_for
from vpcnet.kube.client import KubeClient
from vpcnet.kube.leader import ElectionConfig, LeaderElector
from vpcnet.kube.types import Lease
from vpcnet.settings import Settings

kube_sim, broker, watcher_settings, kube = fx.kube_sim, fx.broker, fx.watcher_settings, fx.kube

LEASE = 3.0


@pytest.fixture
def candidates(watcher_settings: Settings) -> Iterator[list[LeaderElector]]:
    electors = []
    clients = []
    for i in range(3):
        client = KubeClient.from_settings(watcher_settings, component=f"candidate{i}")
        clients.append(client)
        cfg = ElectionConfig(
            name="test-lease", namespace="default", identity=f"c{i}", lease_duration=LEASE
        )
        electors.append(LeaderElector(client, cfg))
    yield electors
    for e in electors:
        e.stop()
    for c in clients:
        c.close()


def holder(kube: KubeClient) -> Lease | None:
    lease = kube.get_lease("default", "test-lease")
    return lease if lease is not None and lease.spec.holder_identity else None


def test_exactly_one_candidate_leads_and_keeps_renewing(
    candidates: list[LeaderElector], kube: KubeClient
) -> None:
    for e in candidates:
        e.start()
    first = wait_for(lambda: holder(kube), what="a leader")
    leader = next(e for e in candidates if e.identity == first.spec.holder_identity)
    renewals = {first.spec.renew_time}
    while len(renewals) < 4:  # several renewal rounds, sampled as they happen
        lease = kube.get_lease("default", "test-lease")
        assert lease is not None and lease.spec.holder_identity == leader.identity
        assert [e.identity for e in candidates if e.is_leader()] in ([leader.identity], [])
        renewals.add(lease.spec.renew_time)
    lease = kube.get_lease("default", "test-lease")
    assert lease is not None
    assert lease.spec.lease_transitions == 0 and lease.spec.acquire_time == first.spec.acquire_time
    assert lease.spec.lease_duration_seconds == 3


def test_a_stopping_leader_hands_over_without_waiting_out_the_lease(
    candidates: list[LeaderElector], kube: KubeClient
) -> None:
    for e in candidates:
        e.start()
    first = wait_for(lambda: holder(kube), what="a leader")
    leader = next(e for e in candidates if e.identity == first.spec.holder_identity)
    before = kube.get_lease("default", "test-lease")
    assert before is not None and before.spec.renew_time is not None
    leader.stop()  # releases the Lease
    assert not leader.is_leader()
    second = wait_for(
        lambda: (lease := holder(kube)) and lease.spec.holder_identity != leader.identity and lease,
        what="a new leader",
    )
    assert second.spec.lease_transitions == 1 and second.spec.acquire_time is not None
    # Waiting out the lease would put the takeover a full lease after the old leader's
    # last renewal (which is at or after `before`); the release let a standby in sooner.
    assert (second.spec.acquire_time - before.spec.renew_time).total_seconds() < LEASE
    wait_for(
        lambda: [e.identity for e in candidates if e.is_leader()] == [second.spec.holder_identity],
        what="the new holder (only) to consider itself leader",
    )
