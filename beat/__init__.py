"""Celery beat for vpcnet: the periodic schedule, and a scheduler only one beat runs.

``celery -A workers beat`` picks both up (``workers`` sets ``beat_scheduler`` and
``beat_schedule``). Several beat replicas may run: each tick, a replica must hold the
cluster's ``beat-lock`` in Redis (token + TTL, renewed every tick, released safely by
token) to send anything; the others stand by and take over within the lock TTL
(``Settings.lease_duration_seconds``, as for the watcher's leader election).
"""

from __future__ import annotations

import heapq
from typing import Any

import redis
import structlog
from celery.beat import Scheduler, event_t

from vpcnet.errors import StateError
from vpcnet.settings import Settings
from vpcnet.state.connection import connect
from vpcnet.state.keys import ClusterKeys
from vpcnet.state.lock import RedisLock, new_token
from vpcnet.tasknames import GC_ENIS, RECONCILE_ALL, REFRESH_LIMITS, WARM_POOL

log = structlog.get_logger("vpcnet.beat")

STANDBY_POLL_SECONDS = 1.0
REFRESH_LIMITS_SECONDS = 3600.0


def beat_schedule(s: Settings) -> dict[str, dict[str, Any]]:
    return {
        "reconcile": {"task": RECONCILE_ALL, "schedule": s.reconcile_interval_seconds},
        "gc-enis": {"task": GC_ENIS, "schedule": s.gc_interval_seconds},
        "warm-pool": {"task": WARM_POOL, "schedule": s.warm_pool_interval_seconds},
        "refresh-limits": {"task": REFRESH_LIMITS, "schedule": REFRESH_LIMITS_SECONDS},
    }


class LockedScheduler(Scheduler):
    """The in-memory beat scheduler, active only while it holds the Redis beat lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = Settings.from_env()
        self._redis: redis.Redis[bytes] = connect(settings.redis_url, socket_timeout=5)
        self._lock = RedisLock(self._redis, ClusterKeys(settings.cluster_name).beat_lock)
        self._token = new_token()
        # The beat lock is a lease like the watcher's: a standby takes over within it.
        self._ttl = settings.lease_duration_seconds
        self.leader = False
        super().__init__(*args, **kwargs)

    def holds_lock(self) -> bool:
        try:
            held = self._lock.hold_or_take(self._token, self._ttl)
        except StateError as e:
            log.warning("beat lock unreachable; standing by", error=str(e))
            held = False
        if held != self.leader:
            log.info("beat leadership changed", leader=held, token=self._token)
            self.leader = held
        return held

    def tick(self, event_t: Any = event_t, min: Any = min, heappop: Any = heapq.heappop,
             heappush: Any = heapq.heappush) -> float:
        if not self.holds_lock():
            return STANDBY_POLL_SECONDS
        interval = float(super().tick(event_t, min, heappop, heappush))
        return float(min(interval, self._ttl / 3))

    def close(self) -> None:
        try:
            self._lock.release(self._token)
        except StateError:
            pass  # the TTL frees it
        super().close()
