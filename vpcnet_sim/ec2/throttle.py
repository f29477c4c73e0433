"""AWS EC2 request-rate throttling: one token bucket per API action.

Sizes and refill rates are AWS's table, ``vpcnet.aws.buckets`` (the one table vpcnet's
own limiter stays under too). The emulator answers an empty bucket with 503
``RequestLimitExceeded`` as EC2 does. ``time_scale`` runs every bucket's refill that
many times faster, for benchmarks whose emulated latencies are scaled the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from vpcnet.aws.buckets import Bucket, aws_bucket, bucket_key

__all__ = ["Throttler", "TokenBucket", "aws_bucket", "bucket_key"]


class TokenBucket:
    """A token bucket refilled continuously; not thread-safe on its own."""

    __slots__ = ("capacity", "rate", "tokens", "stamp")

    def __init__(self, bucket: Bucket, now: float) -> None:
        self.capacity = float(bucket.capacity)
        self.rate = bucket.refill_per_second
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float) -> bool:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Throttler:
    """Per-bucket-key token buckets, created full on first use."""

    def __init__(
        self,
        overrides: Mapping[str, Bucket] | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        time_scale: float = 1.0,
    ) -> None:
        self._overrides = dict(overrides or {})
        self._time_scale = time_scale
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def bucket(self, key: str) -> Bucket:
        """The configured bucket for a key (an override may name the action or the key)."""
        action = key.partition("#")[0]
        bucket = self._overrides.get(key) or self._overrides.get(action) or aws_bucket(key)
        return bucket.scaled(self._time_scale) if self._time_scale != 1.0 else bucket

    def allow(self, key: str) -> bool:
        with self._lock:
            now = self._clock()
            tb = self._buckets.get(key)
            if tb is None:
                tb = self._buckets[key] = TokenBucket(self.bucket(key), now)
            return tb.take(now)

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

    def levels(self) -> dict[str, float]:
        with self._lock:
            return {k: round(tb.tokens, 3) for k, tb in self._buckets.items()}
