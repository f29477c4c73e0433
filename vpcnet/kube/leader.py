"""Lease-based leader election (coordination.k8s.io/v1), as client-go's leaderelection.

One replica holds the Lease and renews it every ``lease/3``. The others poll it and
take over only once it has gone unrenewed for a whole lease duration *as measured on
their own monotonic clock from when they saw it change* — never by comparing the
holder's timestamps with their wall clock, so clock skew between machines is harmless.

The holder stops acting by itself: :meth:`LeaderElector.is_leader` turns False once its
last successful renewal is older than the renew deadline (``2/3`` of the lease), which
is before any other replica may take over (a full lease after it saw that renewal).
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

import structlog

from vpcnet.errors import KubeConflict, VpcnetError
from vpcnet.kube.types import Lease, LeaseSpec

log = structlog.get_logger("vpcnet.leader")


class LeaseStore(Protocol):
    """What election needs from the API (implemented by ``KubeClient``)."""

    def get_lease(self, namespace: str, name: str) -> Lease | None: ...

    def create_lease(self, namespace: str, name: str, spec: LeaseSpec) -> Lease: ...

    def update_lease(self, lease: Lease, spec: LeaseSpec) -> Lease: ...


def make_identity() -> str:
    """hostname + pid + random: unique even for two replicas in one pod or a restarted pid."""
    return f"{socket.gethostname()}_{os.getpid()}_{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class ElectionConfig:
    name: str
    namespace: str
    identity: str
    lease_duration: float = 15.0

    @property
    def lease_seconds(self) -> int:
        # The API stores whole seconds; round up so nobody takes over early.
        return max(1, math.ceil(self.lease_duration))

    @property
    def renew_interval(self) -> float:
        return self.lease_seconds / 3

    @property
    def renew_deadline(self) -> float:
        return self.lease_seconds * 2 / 3

    @property
    def retry_period(self) -> float:
        return self.lease_seconds / 6


class LeaderElector:
    """Runs the election loop in a thread; ``on_change(bool)`` fires on every transition."""

    def __init__(
        self,
        store: LeaseStore,
        config: ElectionConfig,
        *,
        on_change: Callable[[bool], None] | None = None,
        monotonic: Callable[[], float] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._store = store
        self.config = config
        self._on_change = on_change
        self._mono = monotonic or time.monotonic
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._leading = False
        self._last_renew = -math.inf  # monotonic start of our last successful write
        self._observed_rv = ""
        self._observed_at = -math.inf
        self._observed_duration = float(config.lease_seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def identity(self) -> str:
        return self.config.identity

    def is_leader(self) -> bool:
        """True only while our last renewal is fresher than the renew deadline."""
        with self._lock:
            return self._leading and self._mono() < self._last_renew + self.config.renew_deadline

    def step(self) -> bool:
        """One try to acquire or renew the Lease; returns whether we lead afterwards."""
        cfg = self.config
        started = self._mono()
        now = self._now()
        try:
            lease = self._store.get_lease(cfg.namespace, cfg.name)
            if lease is None:
                spec = LeaseSpec(
                    holder_identity=cfg.identity,
                    lease_duration_seconds=cfg.lease_seconds,
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                )
                lease = self._store.create_lease(cfg.namespace, cfg.name, spec)
                return self._won(lease, started)
            self._observe(lease, started)
            holder = lease.spec.holder_identity
            if holder and holder != cfg.identity and not self._expired(started):
                return self._lost(f"held by {holder}")
            if holder == cfg.identity:
                spec = replace(lease.spec, renew_time=now, lease_duration_seconds=cfg.lease_seconds)
            else:
                spec = LeaseSpec(
                    holder_identity=cfg.identity,
                    lease_duration_seconds=cfg.lease_seconds,
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=lease.spec.lease_transitions + 1,
                )
            return self._won(self._store.update_lease(lease, spec), started)
        except KubeConflict:
            # Another candidate wrote first; we will see its record on the next try.
            return self._failed("lost a write race", started)
        except VpcnetError as e:
            return self._failed(str(e), started)

    def _observe(self, lease: Lease, at: float) -> None:
        if lease.resource_version != self._observed_rv:
            self._observed_rv = lease.resource_version
            self._observed_at = at
            self._observed_duration = float(
                lease.spec.lease_duration_seconds or self.config.lease_seconds
            )

    def _expired(self, at: float) -> bool:
        return at >= self._observed_at + self._observed_duration

    def _won(self, lease: Lease, started: float) -> bool:
        self._observe(lease, started)
        with self._lock:
            was = self._leading
            self._leading = True
            self._last_renew = started
        if not was:
            log.info("leader.acquired", identity=self.identity, lease=self.config.name)
            self._notify(True)
        return True

    def _lost(self, why: str) -> bool:
        with self._lock:
            was = self._leading
            self._leading = False
        if was:
            log.warning("leader.lost", identity=self.identity, reason=why)
            self._notify(False)
        return False

    def _failed(self, why: str, started: float) -> bool:
        # A failed renewal keeps leadership until the renew deadline, then gives it up.
        if self._leading and started < self._last_renew + self.config.renew_deadline:
            log.warning("leader.renew_failed", identity=self.identity, reason=why)
            return True
        return self._lost(why)

    def _notify(self, leading: bool) -> None:
        if self._on_change is not None:
            self._on_change(leading)

    def next_wait(self, leading: bool, renewed: bool) -> float:
        """Seconds until the next attempt."""
        cfg = self.config
        if leading:
            return cfg.renew_interval if renewed else cfg.retry_period
        # Wake up right when the holder's lease runs out, not up to a retry period later.
        until_expiry = self._observed_at + self._observed_duration - self._mono()
        return max(0.01, min(cfg.retry_period, until_expiry + 0.01))

    def run(self, stop: threading.Event) -> None:
        """Elect until ``stop`` is set; then hand the Lease over if we hold it."""
        while not stop.is_set():
            before = self._last_renew
            leading = self.step()
            stop.wait(self.next_wait(leading, self._last_renew != before))
        self.release()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run, args=(self._stop,), name="leader-elector", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def release(self) -> None:
        """Give the Lease up now (graceful shutdown) so a standby takes over at once."""
        with self._lock:
            leading = self._leading
        if not leading:
            return
        cfg = self.config
        try:
            lease = self._store.get_lease(cfg.namespace, cfg.name)
            if lease is not None and lease.spec.holder_identity == cfg.identity:
                now = self._now()
                spec = replace(
                    lease.spec, holder_identity="", lease_duration_seconds=1, renew_time=now
                )
                self._store.update_lease(lease, spec)
        except VpcnetError as e:
            log.warning("leader.release_failed", identity=self.identity, error=str(e))
        self._lost("released")
