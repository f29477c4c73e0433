"""Leases as the watcher's election uses them: create (409 when it exists), get, update
guarded by resourceVersion (409 when stale), MicroTime round trips, and a takeover of an
expired Lease by a second candidate through vpcnet's LeaderElector."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from vpcnet.errors import KubeConflict
from vpcnet.kube.client import KubeClient
from vpcnet.kube.leader import ElectionConfig, LeaderElector
from vpcnet.kube.types import LeaseSpec

NS = "default"


def lease_name() -> str:
    return f"c-lease-{uuid.uuid4().hex[:8]}"


def test_create_get_and_create_again_is_409(kube: KubeClient) -> None:
    name = lease_name()
    assert kube.get_lease(NS, name) is None
    acquired = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    spec = LeaseSpec(holder_identity="a", lease_duration_seconds=15, acquire_time=acquired,
                     renew_time=acquired, lease_transitions=0)
    created = kube.create_lease(NS, name, spec)
    assert created.spec == spec  # MicroTime keeps the microseconds
    assert created.name == name and created.namespace == NS and created.resource_version
    got = kube.get_lease(NS, name)
    assert got == created
    with pytest.raises(KubeConflict):
        kube.create_lease(NS, name, LeaseSpec(holder_identity="b"))


def test_update_needs_the_current_resource_version(kube: KubeClient) -> None:
    name = lease_name()
    t0 = datetime.now(UTC)
    lease = kube.create_lease(NS, name, LeaseSpec(holder_identity="a", acquire_time=t0,
                                                  renew_time=t0))
    renewed = kube.update_lease(lease, LeaseSpec(
        holder_identity="a", acquire_time=t0, renew_time=t0 + timedelta(seconds=5)))
    assert renewed.resource_version != lease.resource_version
    assert renewed.spec.renew_time == t0 + timedelta(seconds=5)
    with pytest.raises(KubeConflict):  # lease is what we read before the renewal
        kube.update_lease(lease, LeaseSpec(holder_identity="b", acquire_time=t0,
                                           renew_time=t0, lease_transitions=1))
    got = kube.get_lease(NS, name)
    assert got is not None and got.spec.holder_identity == "a"


def test_an_expired_lease_is_taken_over_and_a_live_one_is_not(kube: KubeClient) -> None:
    name = lease_name()
    clock = {"a": 0.0, "b": 0.0}  # each candidate's own monotonic clock
    a = LeaderElector(kube, ElectionConfig(name, NS, "replica-a", lease_duration=15),
                      monotonic=lambda: clock["a"])
    b = LeaderElector(kube, ElectionConfig(name, NS, "replica-b", lease_duration=15),
                      monotonic=lambda: clock["b"])
    assert a.step() is True  # creates the Lease
    assert b.step() is False  # sees it held
    clock["a"] += 5
    assert a.step() is True  # renews
    clock["b"] += 10  # b saw a's renewal (a new resourceVersion) only now: not expired
    assert b.step() is False
    clock["b"] += 16  # a renewed nothing for longer than the lease: b takes over
    assert b.step() is True
    lease = kube.get_lease(NS, name)
    assert lease is not None
    assert lease.spec.holder_identity == "replica-b" and lease.spec.lease_transitions == 1
    clock["a"] += 1
    assert a.step() is False  # a finds b holding it


def test_two_candidates_racing_for_the_same_version_one_wins(kube: KubeClient) -> None:
    name = lease_name()
    t0 = datetime.now(UTC)
    lease = kube.create_lease(NS, name, LeaseSpec(holder_identity="", acquire_time=t0,
                                                  renew_time=t0))
    kube.update_lease(lease, LeaseSpec(holder_identity="x", acquire_time=t0, renew_time=t0,
                                       lease_transitions=1))
    with pytest.raises(KubeConflict):
        kube.update_lease(lease, LeaseSpec(holder_identity="y", acquire_time=t0,
                                           renew_time=t0, lease_transitions=1))
    got = kube.get_lease(NS, name)
    assert got is not None and got.spec.holder_identity == "x"
