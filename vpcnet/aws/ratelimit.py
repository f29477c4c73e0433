"""One EC2 rate limiter for every worker process: a token bucket per action, in Redis.

AWS throttles each API action with its own token bucket (``vpcnet.aws.buckets``). The
limiter mirrors each bucket at ``share`` of its size and refill rate, so all workers
together never spend more than AWS would grant, and a join storm runs at the bucket's
pace instead of hitting ``RequestLimitExceeded``.

The bucket is kept as GCRA state (one "theoretical arrival time" per action), updated by
one Lua script using the Redis server's clock, so every process sees one clock and one
queue. A caller *reserves* its slot and then sleeps until it, once: waiters are served
in arrival order, without polling, and the time spent waiting is returned for metrics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from vpcnet.aws.buckets import Bucket, bucket_for
from vpcnet.errors import Ec2TemporaryError, StateError
from vpcnet.state.keys import ClusterKeys

# KEYS[1] bucket hash. ARGV: interval_us, burst_us, max_wait_us, penalty (0/1).
# Returns {granted (1/0), wait_us}. With penalty=1 the bucket is emptied (used when
# EC2 throttled us anyway: its real bucket is empty, ours must not burst on top of it).
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or '0')
if tat < now then tat = now end
if ARGV[4] == '1' then
  local drained = now + burst + interval
  if drained > tat then tat = drained end
  redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat))
  redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) / 1000) + 1000)
  return {0, 0}
end
local wait = tat - burst - now
if wait < 0 then wait = 0 end
if wait > tonumber(ARGV[3]) then return {0, wait} end
tat = tat + interval
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat))
redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) / 1000) + 1000)
return {1, wait}
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
    ) -> None:
        """``bucket_of`` gives AWS's bucket per action (an account with raised limits, or a
        test against an emulator configured with other buckets, passes its own)."""
        self._redis = client
        self._keys = ClusterKeys(cluster)
        self._share = share
        self._max_wait_us = int(max_wait_seconds * 1_000_000)
        self._sleep = sleep
        self._script = client.register_script(_GCRA)
        self._bucket_of = bucket_of

    def rate(self, action: str) -> Rate:
        return Rate.share_of(self._bucket_of(action), self._share)

    def acquire(self, action: str) -> float:
        """Reserve the next token for ``action`` and sleep until it is due.

        Returns the seconds waited. When the queue is longer than ``max_wait_seconds``
        nothing is reserved and Ec2TemporaryError(delay=...) tells the task to come back.
        """
        granted, wait_us = self._run(action, penalty=False)
        if not granted:
            raise Ec2TemporaryError(
                "VpcnetRateLimited",
                f"{action}: rate-limit queue is {wait_us / 1e6:.1f}s long",
                delay=wait_us / 1e6,
            )
        if wait_us:
            self._sleep(wait_us / 1e6)
        return wait_us / 1e6

    def drain(self, action: str) -> None:
        """EC2 throttled ``action`` despite us: empty our bucket so we refill with it."""
        self._run(action, penalty=True)

    def _run(self, action: str, *, penalty: bool) -> tuple[bool, int]:
        rate = self.rate(action)
        try:
            res = self._script(
                keys=[self._keys.ratelimit(action)],
                args=[rate.interval_us, rate.burst_us, self._max_wait_us, 1 if penalty else 0],
            )
        except redis.RedisError as e:
            raise StateError(f"rate limiter unavailable: {e}") from e
        granted, wait_us = res
        return bool(int(granted)), int(wait_us)
