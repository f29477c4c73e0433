"""AWS EC2 request-rate throttling: one token bucket per API action.

Sizes and refill rates follow the AWS EC2 API reference, "Request throttling for the
Amazon EC2 API" (request token bucket table). Every action has its *own* bucket sized by
its category; a few listed actions have individual sizes. The emulator answers an
empty bucket with 503 ``RequestLimitExceeded`` as EC2 does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from vpcnet.aws.buckets import Bucket

NON_MUTATING = Bucket(100, 20.0)
# Describe calls of these actions without a filter, pagination or ids drain a smaller
# bucket (AWS: "Unfiltered and unpaginated non-mutating actions").
UNFILTERED = Bucket(50, 10.0)
MUTATING = Bucket(50, 5.0)

_UNFILTERED_ACTIONS = frozenset(
    {
        "DescribeInstances",
        "DescribeInstanceStatus",
        "DescribeNetworkInterfaces",
        "DescribeSecurityGroups",
        "DescribeSnapshots",
        "DescribeSpotInstanceRequests",
        "DescribeVolumes",
    }
)

# "Uncategorized actions" of the AWS table that matter to an ENI/IP manager.
_INDIVIDUAL: Mapping[str, Bucket] = {
    "AssignIpv6Addresses": Bucket(100, 5.0),
    "AssignPrivateIpAddresses": Bucket(100, 5.0),
    "UnassignPrivateIpAddresses": Bucket(100, 5.0),
    "CreateNetworkInterface": Bucket(100, 5.0),
    "DeleteNetworkInterface": Bucket(100, 5.0),
    "ModifyNetworkInterfaceAttribute": Bucket(100, 5.0),
    "CreateTags": Bucket(100, 10.0),
    "DeleteTags": Bucket(100, 10.0),
    "TerminateInstances": Bucket(100, 5.0),
    "RunInstances": Bucket(5, 2.0),
    "StartInstances": Bucket(5, 2.0),
    "AssociateIamInstanceProfile": Bucket(100, 5.0),
    "ModifyInstanceMetadataOptions": Bucket(100, 5.0),
}


def is_non_mutating(action: str) -> bool:
    return action.startswith(("Describe", "Get", "List", "Search"))


def bucket_key(action: str, *, filtered: bool) -> str:
    """The bucket a request draws from (an action's unfiltered calls have their own)."""
    if action in _UNFILTERED_ACTIONS and not filtered:
        return f"{action}#unfiltered"
    return action


def aws_bucket(key: str) -> Bucket:
    action, _, variant = key.partition("#")
    if variant == "unfiltered":
        return UNFILTERED
    if action in _INDIVIDUAL:
        return _INDIVIDUAL[action]
    return NON_MUTATING if is_non_mutating(action) else MUTATING


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
    ) -> None:
        self._overrides = dict(overrides or {})
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def bucket(self, key: str) -> Bucket:
        """The configured bucket for a key (an override may name the action or the key)."""
        action = key.partition("#")[0]
        return self._overrides.get(key) or self._overrides.get(action) or aws_bucket(key)

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
