"""Leader election logic on a fake clock and an in-memory Lease store.

The store enforces what the API server does (create conflicts, resourceVersion checks);
the integration tests run the same elector against the Kubernetes emulator over HTTP.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vpcnet.errors import KubeConflict, KubeTemporaryError
from vpcnet.kube.leader import ElectionConfig, LeaderElector, make_identity
from vpcnet.kube.types import Lease, LeaseSpec


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def mono(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=self.t)


class Store:
    def __init__(self) -> None:
        self.lease: Lease | None = None
        self.rv = 0
        self.down = False

    def _bump(self, spec: LeaseSpec) -> Lease:
        self.rv += 1
        self.lease = Lease("l", "ns", str(self.rv), spec)
        return self.lease

    def get_lease(self, namespace: str, name: str) -> Lease | None:
        if self.down:
            raise KubeTemporaryError(503, "ServiceUnavailable", "down")
        return self.lease

    def create_lease(self, namespace: str, name: str, spec: LeaseSpec) -> Lease:
        if self.lease is not None:
            raise KubeConflict(409, "AlreadyExists", "exists")
        return self._bump(spec)

    def update_lease(self, lease: Lease, spec: LeaseSpec) -> Lease:
        if self.down:
            raise KubeTemporaryError(503, "ServiceUnavailable", "down")
        if self.lease is None or lease.resource_version != self.lease.resource_version:
            raise KubeConflict(409, "Conflict", "stale")
        return self._bump(spec)


def elector(
    store: Store, clock: Clock, ident: str, changes: list[bool] | None = None
) -> LeaderElector:
    cfg = ElectionConfig(name="l", namespace="ns", identity=ident, lease_duration=15)
    return LeaderElector(
        store,
        cfg,
        on_change=(changes.append if changes is not None else None),
        monotonic=clock.mono,
        now=clock.now,
    )


def test_config_timings() -> None:
    cfg = ElectionConfig("l", "ns", "me", lease_duration=15)
    assert (cfg.renew_interval, cfg.renew_deadline, cfg.retry_period) == (5, 10, 2.5)
    assert ElectionConfig("l", "ns", "me", lease_duration=1.2).lease_seconds == 2  # rounded up


def test_identity_is_unique_per_call() -> None:
    a, b = make_identity(), make_identity()
    assert a != b and a.count("_") >= 2


def test_first_candidate_acquires_and_others_wait() -> None:
    store, clock, changes = Store(), Clock(), []
    a, b = elector(store, clock, "a", changes), elector(store, clock, "b")
    assert a.step() and a.is_leader() and changes == [True]
    assert store.lease is not None and store.lease.spec.holder_identity == "a"
    assert not b.step() and not b.is_leader()
    clock.t += 5
    assert a.step()  # renew keeps acquire time, moves renew time
    assert store.lease.spec.acquire_time == clock.now() - timedelta(seconds=5)
    assert store.lease.spec.renew_time == clock.now()
    assert not b.step()


def test_takeover_only_after_a_full_lease_since_the_last_observed_renewal() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.step()
    clock.t += 1
    assert not b.step()  # b observes a's record now (t=1001)
    clock.t += 14.9
    assert not b.step()  # 14.9 s after observing it: not expired yet
    clock.t += 0.2
    assert b.step() and b.is_leader()  # 15.1 s: expired, b takes over
    assert store.lease is not None
    assert store.lease.spec.holder_identity == "b"
    assert store.lease.spec.lease_transitions == 1
    assert store.lease.spec.acquire_time == clock.now()


def test_a_renewing_leader_is_never_overtaken() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    for _ in range(20):
        assert a.step()
        clock.t += a.config.renew_interval / 2
        assert not b.step()
        clock.t += a.config.renew_interval / 2


def test_leader_stops_acting_at_the_renew_deadline_before_anyone_can_take_over() -> None:
    store, clock, changes = Store(), Clock(), []
    a = elector(store, clock, "a", changes)
    a.step()
    store.down = True
    clock.t += 5
    assert a.step()  # renewal failed, but within the deadline: still leading
    assert a.is_leader()
    clock.t += 4.9
    assert a.is_leader()
    clock.t += 0.2  # 10.1 s since the last renewal: past the 10 s deadline
    assert not a.is_leader()  # stops acting by its own clock, even before the next try
    assert not a.step() and changes == [True, False]


def test_lost_write_race_is_not_leadership() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.step()
    clock.t += 16
    # b read the lease, then a renewed before b's update landed.
    stale = store.lease
    assert stale is not None
    a.step()
    store_get = store.get_lease
    store.get_lease = lambda namespace, name: stale  # type: ignore[method-assign]
    assert not b.step()
    store.get_lease = store_get  # type: ignore[method-assign]
    assert store.lease is not None and store.lease.spec.holder_identity == "a"


def test_release_hands_over_at_once() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.step()
    assert not b.step()
    a.release()
    assert not a.is_leader()
    assert store.lease is not None and store.lease.spec.holder_identity == ""
    assert b.step()  # no need to wait out the lease


def test_wait_times() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.step()
    b.step()
    assert a.next_wait(True, True) == a.config.renew_interval
    assert a.next_wait(True, False) == a.config.retry_period
    clock.t += 14
    # One second left on a's lease as b observed it: wake just after it runs out.
    assert 1.0 < b.next_wait(False, False) < 1.1


def test_expired_lease_with_foreign_holder_record_is_taken_and_transitions_count() -> None:
    store, clock = Store(), Clock()
    store._bump(LeaseSpec("old", 15, clock.now(), clock.now(), 4))
    b = elector(store, clock, "b")
    assert not b.step()
    clock.t += 15
    assert b.step()
    assert store.lease is not None and store.lease.spec.lease_transitions == 5
    assert store.lease.spec.holder_identity == "b"
