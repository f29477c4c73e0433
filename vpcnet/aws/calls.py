"""Counting and timing of every EC2 call, across all worker processes (in Redis).

Cluster totals live in the ``ec2-stats`` hash (``calls:<Action>``, ``throttled:<Action>``,
``errors:<Action>``, ``latency_us:<Action>``, ``wait_us:<Action>``); calls made on behalf
of one node are also counted in that node's ``ec2-calls`` hash, so tests and the storm
benchmark compare them with the plan's minimum. Calls that fill a cluster-wide cache
(instance-type limits, subnets) are made outside any node's attribution.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import redis
import structlog

from vpcnet.state.keys import ClusterKeys

log = structlog.get_logger(__name__)

_node: contextvars.ContextVar[str | None] = contextvars.ContextVar("vpcnet_ec2_node", default=None)


@contextlib.contextmanager
def attributed_to(node: str | None) -> Iterator[None]:
    """EC2 calls inside the block count for ``node`` (None: cluster-wide work)."""
    token = _node.set(node)
    try:
        yield
    finally:
        _node.reset(token)


def current_node() -> str | None:
    return _node.get()


class CallRecorder:
    def __init__(self, client: redis.Redis[bytes], cluster: str) -> None:
        self._redis = client
        self._keys = ClusterKeys(cluster)

    def record(
        self,
        action: str,
        *,
        seconds: float,
        waited: float,
        throttled: bool = False,
        error: str | None = None,
    ) -> None:
        node = current_node()
        try:
            pipe = self._redis.pipeline(transaction=False)
            stats = self._keys.ec2_stats
            pipe.hincrby(stats, f"calls:{action}", 1)
            pipe.hincrby(stats, f"latency_us:{action}", int(seconds * 1e6))
            if waited:
                pipe.hincrby(stats, f"wait_us:{action}", int(waited * 1e6))
            if throttled:
                pipe.hincrby(stats, f"throttled:{action}", 1)
            elif error:
                pipe.hincrby(stats, f"errors:{action}", 1)
            if node is not None:
                pipe.hincrby(self._keys.node(node).ec2_calls, action, 1)
            pipe.execute()
        except redis.RedisError as e:
            # Metrics must never fail an EC2 call that already happened.
            log.warning("ec2 call not recorded", action=action, error=str(e))

    def totals(self) -> dict[str, dict[str, int]]:
        """``{"calls": {action: n}, "throttled": {...}, "errors": ..., "latency_us": ..., "wait_us": ...}``"""
        out: dict[str, dict[str, int]] = {}
        raw: dict[bytes, bytes] = self._redis.hgetall(self._keys.ec2_stats)
        for k, v in raw.items():
            kind, _, action = k.decode().partition(":")
            out.setdefault(kind, {})[action] = int(v)
        return out

    def node_calls(self, node: str) -> dict[str, int]:
        raw: dict[bytes, bytes] = self._redis.hgetall(self._keys.node(node).ec2_calls)
        return {k.decode(): int(v) for k, v in raw.items()}
