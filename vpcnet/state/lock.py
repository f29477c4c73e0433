"""Redis locks owned by a token: the one lock implementation of vpcnet.

A lock is one string key holding its owner's random token, with a TTL so a killed owner
frees it. Only the owner can extend or release it (checked by token, atomically, in
Lua). Two users:

- the per-node lock of the control plane: ``acquire`` once, then a ``Lease`` that a
  heartbeat extends and that ``fence``s every EC2 mutation (invariant 9);
- beat's lock: ``hold_or_take`` every tick (renew if ours, take it if free).

Extending never shortens a lock: a fence that reserved a long in-flight EC2 call must not
be cut back by the heartbeat's shorter TTL while the call is still out.

Redis replicates asynchronously: a failover can promote a replica that never saw the
lock's last extension, and another pass then takes a lock whose call is still in
flight. With ``replicas`` > 0 an extension counts only once that many replicas have it
(``WAIT``); otherwise the fence refuses (StateError: the pass stops, the task retries).
That narrows the window to what WAIT cannot promise (Sentinel may still promote a
replica that did not acknowledge), it does not make Redis a consensus store.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field

import redis

from vpcnet.errors import LockHeld, StateError

# KEYS[1] lock. ARGV: token, ttl ms. 1 = ours, now with at least ttl ms left.
_EXTEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local want = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < want then redis.call('PEXPIRE', KEYS[1], want) end
return 1
"""
# Renew if ours, else take it if free. 1 = we hold it.
_HOLD_OR_TAKE = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def new_token() -> str:
    return uuid.uuid4().hex


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisLock:
    """The lock at ``key``; holds no state of its own (one per key is enough)."""

    def __init__(self, client: redis.Redis[bytes], key: str, *, replicas: int = 0,
                 replica_wait_seconds: float = 0.5) -> None:
        self.key = key
        self.replicas = replicas
        self._replica_wait_ms = _ms(replica_wait_seconds)
        self._redis = client
        self._extend = client.register_script(_EXTEND)
        self._hold_or_take = client.register_script(_HOLD_OR_TAKE)
        self._release = client.register_script(_RELEASE)

    def acquire(self, ttl_seconds: float) -> Lease | None:
        """The lock for ``ttl_seconds`` under a new token, or None if someone holds it."""
        token = new_token()
        try:
            ok = self._redis.set(self.key, token, nx=True, px=_ms(ttl_seconds))
        except redis.RedisError as e:
            raise StateError(f"lock {self.key}: {e}") from e
        return Lease(self, token) if ok else None

    def extend(self, token: str, ttl_seconds: float) -> bool:
        """True if ``token`` holds the lock, which now has at least ``ttl_seconds`` left
        (on ``replicas`` replicas too: StateError if they do not confirm in time)."""
        try:
            ours = bool(self._extend(keys=[self.key], args=[token, _ms(ttl_seconds)]))
            if not ours or not self.replicas:
                return ours
            acked = int(self._redis.wait(self.replicas, self._replica_wait_ms))
        except redis.RedisError as e:
            raise StateError(f"lock {self.key}: {e}") from e
        if acked < self.replicas:
            raise StateError(f"lock {self.key}: extension reached {acked} of {self.replicas} "
                             "replicas; a failover could lose it, so no action is taken")
        return True

    def hold_or_take(self, token: str, ttl_seconds: float) -> bool:
        """Renew the lock to ``ttl_seconds`` if ``token`` holds it, take it if it is free."""
        try:
            return bool(self._hold_or_take(keys=[self.key], args=[token, _ms(ttl_seconds)]))
        except redis.RedisError as e:
            raise StateError(f"lock {self.key}: {e}") from e

    def release(self, token: str) -> bool:
        """Free the lock if ``token`` holds it; never frees another owner's lock."""
        try:
            return bool(self._release(keys=[self.key], args=[token]))
        except redis.RedisError as e:
            raise StateError(f"lock {self.key}: {e}") from e

    def held(self) -> bool:
        try:
            return bool(self._redis.exists(self.key))
        except redis.RedisError as e:
            raise StateError(f"lock {self.key}: {e}") from e


@dataclass(frozen=True)
class Lease:
    """One holding of a lock. Once lost (seen by the heartbeat or by a fence) it stays
    lost: every later ``fence`` raises without asking Redis, so no further action is
    taken on a lock someone else may hold now."""

    lock: RedisLock
    token: str
    _lost: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    _lingers: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    @property
    def lingers(self) -> bool:
        return self._lingers.is_set()

    def mark_lost(self) -> None:
        self._lost.set()

    def extend(self, ttl_seconds: float) -> None:
        """Keep the lock at least ``ttl_seconds`` more; LockHeld if it is no longer ours."""
        self.fence(ttl_seconds)

    def fence(self, seconds: float) -> None:
        """Verify the lock is still ours and make it last at least ``seconds`` more, in one
        atomic step; LockHeld (the task retries later) if it was lost. StateError if
        Redis cannot say: the caller must not act then either."""
        if self._lost.is_set():
            raise LockHeld(f"lost the lock {self.lock.key}", delay=1.0)
        if not self.lock.extend(self.token, seconds):
            self._lost.set()
            raise LockHeld(f"lost the lock {self.lock.key}", delay=1.0)

    def linger(self, seconds: float) -> None:
        """Keep the lock ``seconds`` more and never release it early: a call whose outcome
        is unknown may still be carried out, the next pass must not start before."""
        self._lingers.set()
        try:
            self.lock.extend(self.token, seconds)
        except StateError:
            pass  # the lock keeps the TTL the fence gave it before the call

    def release(self) -> None:
        """Free the lock if still ours (unless it lingers); an unreachable Redis frees it
        by TTL."""
        if self._lingers.is_set():
            return
        try:
            self.lock.release(self.token)
        except StateError:
            pass


__all__ = ["Lease", "RedisLock", "new_token"]
