"""One EC2 rate limiter for every worker process: a token bucket per action, in Redis,
served in priority order.

AWS throttles each API action with its own token bucket (``vpcnet.aws.buckets``). The
limiter mirrors each bucket at ``share`` of its size and refill rate, so all workers
together never spend more than AWS would grant, and a join storm runs at the bucket's
pace instead of hitting ``RequestLimitExceeded``.

The bucket is GCRA state (one "theoretical arrival time", ``tat``, per action) kept by
one Lua script on the Redis server's clock, so every process sees one clock. Waiters
queue per action in two sorted sets, foreground and background
(``vpcnet.aws.priority``): a foreground waiter is scored by its node's ticket (the time
of the node's first foreground call), a background one by its arrival. A waiter at
position ``p`` of the combined order (all foreground first) is granted a token once
``tat - burst + p * interval <= now``: the tokens due now go to the first waiters in
line, and a waiter asleep past its turn delays nobody behind it (the next due token is
theirs). Every grant advances ``tat`` by one interval exactly as plain GCRA does, so
the total rate never exceeds the share, whatever the order.

A waiter sleeps until its estimated turn (capped, so it refreshes its place) and asks
again. A waiter that stops asking — its process died — is dropped from the queue after
``_ALIVE_SECONDS``; until then it holds at most one token's place.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis

from vpcnet.aws.buckets import Bucket, bucket_for
from vpcnet.aws.priority import CallPriority, Priority, current_priority
from vpcnet.errors import Ec2TemporaryError, StateError
from vpcnet.state.keys import ClusterKeys

# A waiter re-asks at least this often, and is dropped when it has not for _ALIVE.
_POLL_CAP_SECONDS = 0.5
_ALIVE_SECONDS = 3.0
# A node keeps its ticket while it keeps making foreground calls, and this long after.
TICKET_TTL_SECONDS = 900.0

# KEYS: 1 bucket hash, 2 foreground queue, 3 background queue, 4 liveness zset,
#       5 the node's ticket key ("" for none).
# ARGV: 1 interval_us, 2 burst_us, 3 member, 4 level (0/1), 5 alive_us, 6 ticket_ttl_ms,
#       7 op: "take" | "leave" | "drain".
# Returns {granted (1/0), wait_us}: wait_us is the estimated time to this waiter's turn.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local member = ARGV[3]
local op = ARGV[7]
local function save(tat)
  redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat))
  redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) / 1000) + 1000)
end
local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or '0')
if tat < now then tat = now end
if op == 'drain' then
  -- EC2 throttled us anyway: its real bucket is empty, ours must not burst on top of it.
  local drained = now + burst + interval
  if drained > tat then save(drained) end
  return {0, 0}
end
if op == 'leave' then
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZREM', KEYS[3], member)
  redis.call('ZREM', KEYS[4], member)
  return {0, 0}
end
-- Forget waiters that stopped asking (their process died).
local dead = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
for _, m in ipairs(dead) do
  redis.call('ZREM', KEYS[2], m)
  redis.call('ZREM', KEYS[3], m)
  redis.call('ZREM', KEYS[4], m)
end
local level = tonumber(ARGV[4])
local queue = KEYS[2 + level]
if redis.call('ZSCORE', queue, member) == false then
  local score = now
  if level == 0 and KEYS[5] ~= '' then
    local ticket = redis.call('GET', KEYS[5])
    if ticket then score = tonumber(ticket) else redis.call('SET', KEYS[5], now) end
    redis.call('PEXPIRE', KEYS[5], tonumber(ARGV[6]))
  end
  redis.call('ZADD', queue, score, member)
end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), member)
local pos = redis.call('ZRANK', queue, member)
if level == 1 then pos = pos + redis.call('ZCARD', KEYS[2]) end
local due = tat - burst + pos * interval
if due <= now then
  save(tat + interval)
  redis.call('ZREM', queue, member)
  redis.call('ZREM', KEYS[4], member)
  return {1, 0}
end
for _, k in ipairs({KEYS[2], KEYS[3], KEYS[4]}) do
  redis.call('PEXPIRE', k, math.ceil(tonumber(ARGV[5]) / 1000) * 2)
end
return {0, due - now}
"""


@dataclass(frozen=True, slots=True)
class Rate:
    """The limiter's share of one AWS bucket."""

    capacity: int
    per_second: float

    @classmethod
    def share_of(cls, bucket: Bucket, share: float) -> Rate:
        return cls(max(1, math.floor(bucket.capacity * share)), bucket.refill_per_second * share)

    @property
    def interval_us(self) -> int:
        return max(1, round(1_000_000 / self.per_second))

    @property
    def burst_us(self) -> int:
        return (self.capacity - 1) * self.interval_us


class RateLimiter:
    """Shared per-action token buckets; ``acquire`` blocks until the caller may call EC2."""

    def __init__(
        self,
        client: redis.Redis[bytes],
        cluster: str,
        *,
        share: float,
        max_wait_seconds: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        bucket_of: Callable[[str], Bucket] = bucket_for,
        time_scale: float = 1.0,
    ) -> None:
        """``bucket_of`` gives AWS's bucket per action (an account with raised limits, or a
        test against an emulator configured with other buckets, passes its own);
        ``time_scale`` refills every bucket that many times faster (to match an emulator
        whose clock runs faster, ``Ec2SimConfig.time_scaled``)."""
        if time_scale <= 0:
            raise ValueError(f"time scale must be positive, not {time_scale}")
        self._redis = client
        self._keys = ClusterKeys(cluster)
        self._share = share
        self._max_wait = max_wait_seconds
        self._sleep = sleep
        self._script = client.register_script(_SCRIPT)
        self._bucket_of = bucket_of
        self._time_scale = time_scale

    def rate(self, action: str) -> Rate:
        return Rate.share_of(self._bucket_of(action).scaled(self._time_scale), self._share)

    def acquire(self, action: str) -> float:
        """Wait for ``action``'s next token in the caller's priority order (the context's
        ``vpcnet.aws.priority``). Returns the seconds waited.

        When the caller's turn is further away than ``max_wait_seconds`` (or it has
        waited that long) it leaves the queue and Ec2TemporaryError(delay=...) tells the
        task to come back.
        """
        prio = current_priority(action)
        member = uuid.uuid4().hex
        start = time.monotonic()
        try:
            while True:
                granted, wait_us = self._run(action, "take", member, prio)
                waited = time.monotonic() - start
                if granted:
                    return waited
                wait = wait_us / 1e6
                if waited + wait > self._max_wait:
                    raise Ec2TemporaryError(
                        "VpcnetRateLimited",
                        f"{action}: rate-limit turn is {wait:.1f}s away after {waited:.1f}s",
                        delay=wait,
                    )
                self._sleep(min(wait, _POLL_CAP_SECONDS))
        except BaseException:
            # Not granted (refused, interrupted): give the place up now, not in _ALIVE.
            self._leave(action, member, prio)
            raise

    def drain(self, action: str) -> None:
        """EC2 throttled ``action`` despite us: empty our bucket so we refill with it."""
        self._run(action, "drain", "", current_priority())

    def _leave(self, action: str, member: str, prio: CallPriority) -> None:
        try:
            self._run(action, "leave", member, prio)
        except StateError:
            pass  # the waiter expires on its own after _ALIVE_SECONDS

    def _run(self, action: str, op: str, member: str, prio: CallPriority) -> tuple[bool, int]:
        rate = self.rate(action)
        base = self._keys.ratelimit(action)
        ticket = (
            self._keys.ratelimit(f"ticket:{prio.node}")
            if prio.level is Priority.FOREGROUND and prio.node
            else ""
        )
        try:
            res = self._script(
                keys=[base, f"{base}:q0", f"{base}:q1", f"{base}:alive", ticket],
                args=[rate.interval_us, rate.burst_us, member, int(prio.level),
                      int(_ALIVE_SECONDS * 1e6), int(TICKET_TTL_SECONDS * 1000), op],
            )
        except redis.RedisError as e:
            raise StateError(f"rate limiter unavailable: {e}") from e
        granted, wait_us = res
        return bool(int(granted)), int(wait_us)
