"""Enqueue claims: who may enqueue a node's task now, so duplicates do not pile up.

Two kinds, one owner (layout: ``vpcnet.state.keys``):

- :class:`DedupClaims`, the watcher's: a node's ``dedup:<action>`` key holds what was
  enqueued (e.g. the instance id) for the dedup window; an equal value is a duplicate,
  a different one (a replaced instance) wins at once.
- :class:`FollowupClaims`, beat's scans': the ``queued:<task>`` field of the node hash
  holds when a scan last enqueued that task; the task clears it when it starts.

Each claim is one Lua script, so two claimers (two beats during a lease hand-over, a
scan and the watcher) can never both win.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis

from vpcnet.errors import StateError
from vpcnet.state.keys import ClusterKeys, followup_field

# Set the key to ARGV[1] for ARGV[2] ms unless it already holds ARGV[1].
# Returns {1, 0} when claimed, {0, remaining ms} when an equal claim is still live.
_CLAIM = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  return {0, redis.call('PTTL', KEYS[1])}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, 0}
"""

# Set field ARGV[1] of hash KEYS[1] to the server's time unless it holds a time less than
# ARGV[2] seconds ago. Returns 1 when claimed, 0 when a fresh claim holds. The server's
# clock, not the claimers': one clock for every claimer, whatever host it runs on. A value
# that is no number (written by hand) is a stale claim.
_FOLLOWUP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local at = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '')
if at and now - at < tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.3f', now))
return 1
"""


@dataclass(frozen=True, slots=True)
class Claim:
    won: bool
    remaining: float  # seconds the equal claim still holds (0 when won)


class DedupClaims:
    """The watcher's enqueue dedup, one key per (node, action)."""

    def __init__(self, client: redis.Redis[bytes], keys: ClusterKeys, window_seconds: float) -> None:
        self._r = client
        self._keys = keys
        self._script = client.register_script(_CLAIM)
        self.window = window_seconds

    def claim(self, node: str, action: str, value: str) -> Claim:
        """Take the claim for enqueuing ``action`` with ``value`` on ``node``.

        Won when no equal claim is live; a different value (a new instance id) wins at
        once. The claim lapses after the window so a later change enqueues again.
        """
        key = self._keys.dedup_action(node, action)
        try:
            won, pttl = cast(
                list[int], self._script(keys=[key], args=[value, int(self.window * 1000)])
            )
        except redis.RedisError as e:
            raise StateError(f"dedup claim for {node}: {e}") from e
        return Claim(won=bool(won), remaining=max(0.0, int(pttl) / 1000))

    def drop(self, node: str, action: str) -> None:
        """Let the next enqueue of ``action`` through (e.g. after the send failed)."""
        try:
            self._r.delete(self._keys.dedup_action(node, action))
        except redis.RedisError as e:
            raise StateError(f"dedup drop for {node}: {e}") from e


class FollowupClaims:
    """Beat's scans enqueue a node's task at most once while an enqueue is fresh."""

    def __init__(self, client: redis.Redis[bytes], keys: ClusterKeys) -> None:
        self._r = client
        self._keys = keys
        self._script = client.register_script(_FOLLOWUP)

    def claim(self, node: str, task: str, fresh_seconds: float) -> bool:
        """Mark ``task`` as enqueued for ``node`` unless an enqueue is still fresh (scans
        run more often than a long queue drains; this keeps them from piling duplicates).
        Of claimers racing for the same follow-up, exactly one wins."""
        try:
            won = self._script(keys=[self._keys.node(node).node],
                               args=[followup_field(task), repr(float(fresh_seconds))])
        except redis.RedisError as e:
            raise StateError(f"followup {node}: {e}") from e
        return bool(cast(int, won))

    def clear(self, node: str, task: str) -> None:
        try:
            self._r.hdel(self._keys.node(node).node, followup_field(task))
        except redis.RedisError:
            pass  # it goes stale on its own


# The hand-over hash of a node's provisioning pass: ``token`` (the lock token of the
# provisioning pass holding the node's lock) and ``wanted`` (another pass for the node
# was asked for while it held it). Only meaningful while ``token`` holds the lock.
_HAND_OVER = """
local holder = redis.call('GET', KEYS[1])
if not holder then return 0 end
if redis.call('HGET', KEYS[2], 'token') ~= holder then return -1 end
redis.call('HSET', KEYS[2], 'wanted', '1')
return 1
"""
# KEYS[1] lock, KEYS[2] hand-over hash. ARGV[1] token. 1 = a pass was wanted (the flag
# is now cleared: the caller's next round serves it), 0 = none, -1 = the lock is not ours.
_TAKE_WANTED = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[2], 'wanted') then
  redis.call('HDEL', KEYS[2], 'wanted')
  return 1
end
return 0
"""
# Release the lock if ARGV[1] holds it, and the hand-over with it, in one step: a pass
# that asks to be served after this can only find the lock free. Returns 1 when a pass
# was wanted since the last TAKE_WANTED (the caller sends one), 0 when none, -1 when
# the lock was not ours (nothing is touched).
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local wanted = redis.call('HGET', KEYS[2], 'wanted')
redis.call('DEL', KEYS[2])
redis.call('DEL', KEYS[1])
if wanted then return 1 end
return 0
"""

HANDED_OVER = 1  # the holder (a provisioning pass) serves it before releasing the lock
LOCK_FREE = 0  # no one holds the lock: take it
HELD_BY_OTHER_WORK = -1  # held, but not by a provisioning pass (node_ready, release, ...)


class PassHandover:
    """A provisioning pass that finds its node's lock held by another provisioning pass
    hands its work to that pass instead of retrying later: the holder re-plans from a
    fresh read before it lets the lock go (``vpcnet.control.provision``). The flag and
    the release are one script each, so a hand-over is never lost between the holder's
    last look and its release: it then either finds the lock free or is reported by the
    release (and the holder sends a pass)."""

    def __init__(self, client: redis.Redis[bytes], keys: ClusterKeys, ttl_seconds: float) -> None:
        self._r = client
        self._keys = keys
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        self._hand_over = client.register_script(_HAND_OVER)
        self._take = client.register_script(_TAKE_WANTED)
        self._release = client.register_script(_RELEASE)

    def _key_pair(self, node: str) -> list[str]:
        keys = self._keys.node(node)
        return [keys.lock, keys.lock_pass]

    def begin(self, node: str, token: str) -> None:
        """The holder of lock ``token`` is a provisioning pass that takes hand-overs. The
        hash outlives a killed holder by at most its TTL (a new token never matches)."""
        _, handover = self._key_pair(node)
        try:
            with self._r.pipeline(transaction=True) as pipe:
                pipe.delete(handover)
                pipe.hset(handover, "token", token)
                pipe.pexpire(handover, self._ttl_ms)
                pipe.execute()
        except redis.RedisError as e:
            raise StateError(f"hand-over of {node}: {e}") from e

    def hand_over(self, node: str) -> int:
        """HANDED_OVER, LOCK_FREE or HELD_BY_OTHER_WORK (see there)."""
        try:
            return int(cast(int, self._hand_over(keys=self._key_pair(node))))
        except redis.RedisError as e:
            raise StateError(f"hand-over of {node}: {e}") from e

    def holder_seconds_left(self, node: str) -> float:
        """How long the node's lock lives unless its holder extends it (0 when free). A
        holder killed mid-pass never extends it: a hand-over to it is lost, and a pass
        sent for after this time finds the lock free."""
        lock, _ = self._key_pair(node)
        try:
            ms = int(self._r.pttl(lock))
        except redis.RedisError as e:
            raise StateError(f"hand-over of {node}: {e}") from e
        return max(ms, 0) / 1000.0

    def take_wanted(self, node: str, token: str) -> bool:
        """Whether a pass was handed over since the last look (and clear it)."""
        try:
            return int(cast(int, self._take(keys=self._key_pair(node), args=[token]))) == 1
        except redis.RedisError as e:
            raise StateError(f"hand-over of {node}: {e}") from e

    def release(self, node: str, token: str) -> bool:
        """Free the lock ``token`` holds; True when a pass was handed over after the last
        ``take_wanted`` (it is the caller's to send). An unreachable Redis frees the lock
        by TTL (and reports no hand-over: the handing pass's demand is re-published or
        found by the warm-pool scan)."""
        try:
            return int(cast(int, self._release(keys=self._key_pair(node), args=[token]))) == 1
        except redis.RedisError:
            return False
