"""The one Redis client factory: every vpcnet component builds its clients here.

``connect(url)`` takes the forms of ``vpcnet.state.redis_url`` (one server, or a
Sentinel-monitored primary) and returns a plain ``redis.Redis`` whose connections follow
a failover without a restart:

- Sentinel: each new connection asks the sentinels for the current primary
  (redis-py's ``Sentinel.master_for``); while the old primary is down or not yet
  replaced the sentinels name none, and the client waits and asks again (bounded).
- A connection still open to a demoted primary gets ``READONLY`` on its next write;
  redis-py's Sentinel connection turns that into a ConnectionError, and a plain
  ``redis://`` client (an ElastiCache primary endpoint, whose DNS name moves on
  failover) disconnects on it: either way the command is retried on a fresh connection.
- Retries are bounded (``FAILOVER_RETRY``) by count and by a time budget that holds
  across redis-py's nested retries (a command's retry around a connect's retry would
  otherwise multiply: 6 x 6 attempts, close to a minute with no sentinel answering). A
  failover that takes longer surfaces as a ``redis.ConnectionError`` to the caller,
  which has its own retry (tasks, agent loops).

A failover can lose acknowledged writes (replication is asynchronous). Components that
can rebuild what they wrote pass ``on_master_change``: it is called once each time a
connection finds that the sentinels name a different primary than before (the agent
rewrites its whole mirror then).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedSSLConnection

from vpcnet.state.redis_url import (
    SentinelEndpoint,
    is_sentinel_url,
    parse_sentinel_url,
    validate_redis_url,
)

_CALL = threading.local()  # the deadline of the outermost retrying call in this thread


class _BudgetRetry(Retry):
    """redis-py's Retry, with one time budget for a call and every retry nested in it."""

    def __init__(self, budget: float, backoff: ExponentialBackoff, retries: int,
                 supported_errors: tuple[type[Exception], ...]) -> None:
        super().__init__(backoff, retries, supported_errors)
        self._budget = budget
        self._count = retries
        self._delays = backoff

    def call_with_retry(self, do: Callable[[], Any], fail: Callable[..., object],
                        is_retryable: Callable[[Exception], bool] | None = None,
                        with_failure_count: bool = False) -> Any:
        outermost = getattr(_CALL, "deadline", None) is None
        if outermost:
            _CALL.deadline = time.monotonic() + self._budget
        try:
            self._delays.reset()
            failures = 0
            while True:
                try:
                    return do()
                except getattr(self, "_supported_errors") as error:  # noqa: B009 (kept in sync by redis-py)
                    if is_retryable is not None and not is_retryable(error):
                        raise
                    failures += 1
                    if with_failure_count:
                        fail(error, failures)
                    else:
                        fail(error)
                    delay = self._delays.compute(failures)
                    if failures > self._count or time.monotonic() + delay > _CALL.deadline:
                        raise
                    time.sleep(delay)
        finally:
            if outermost:
                _CALL.deadline = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long one command keeps trying across a failover before it fails."""

    retries: int = 5
    backoff_base: float = 0.25  # seconds: 0.5, 1, 2, 2, 2
    backoff_cap: float = 2.0
    # A Sentinel failover takes down-after-milliseconds (5 s in the overlay) plus about a
    # second to elect and promote.
    budget_seconds: float = 10.0

    def retry(self, *, on_timeout: bool = True) -> Retry:
        errors: tuple[type[Exception], ...] = (redis.ConnectionError, redis.ReadOnlyError)
        if on_timeout:
            errors += (redis.TimeoutError, socket.timeout)
        return _BudgetRetry(self.budget_seconds,
                            ExponentialBackoff(cap=self.backoff_cap, base=self.backoff_base),
                            self.retries, errors)


FAILOVER_RETRY = RetryPolicy()


class _FollowingPool(SentinelConnectionPool):
    """redis-py's Sentinel pool, telling its owner when the primary it connects to moved."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        on_change: Callable[[], None] | None = kwargs.pop("on_master_change", None)
        super().__init__(service_name, sentinel_manager, **kwargs)
        if on_change is None:
            return
        # The connections ask the pool's proxy (redis-py >= 5.1) or the pool itself for the
        # primary on every connect; wrap whichever they call.
        asked: Any = getattr(self, "proxy", self)
        ask = asked.get_master_address

        def get_master_address() -> Any:
            before = asked.master_address
            address = ask()
            if before is not None and address != before:
                on_change()
            return address

        asked.get_master_address = get_master_address


def connect(
    url: str,
    *,
    credential_provider: redis.CredentialProvider | None = None,
    on_master_change: Callable[[], None] | None = None,
    **client_opts: Any,
) -> redis.Redis[bytes]:
    """A client for ``url`` (see the module doc). ``credential_provider`` replaces the
    URL's user and password for the data connections (per-node credentials);
    ``client_opts`` are redis-py's (``socket_timeout``, ``max_connections`` …).
    ``retry_on_timeout=False`` keeps a timed-out command from being sent again."""
    validate_redis_url(url)
    on_timeout = bool(client_opts.pop("retry_on_timeout", True))
    client_opts.setdefault("retry", FAILOVER_RETRY.retry(on_timeout=on_timeout))
    if credential_provider is not None:
        client_opts["credential_provider"] = credential_provider
    if is_sentinel_url(url):
        return _sentinel_client(parse_sentinel_url(url), on_master_change, client_opts)
    client: redis.Redis[bytes] = redis.Redis.from_url(url, **client_opts)
    return client


def _sentinel_client(
    ep: SentinelEndpoint, on_master_change: Callable[[], None] | None, opts: dict[str, Any]
) -> redis.Redis[bytes]:
    # The sentinels are asked with the caller's timeouts, their own credentials and TLS.
    sentinel_kwargs: dict[str, Any] = {
        k: v for k, v in opts.items() if k in ("socket_timeout", "socket_connect_timeout")
    }
    sentinel_kwargs.setdefault("socket_timeout", 2.0)
    sentinel_kwargs.setdefault("socket_connect_timeout", 2.0)
    # One try per sentinel: a silent one is skipped for the next (the command's retry,
    # with its budget, asks them all again).
    sentinel_kwargs["retry"] = Retry(NoBackoff(), 0)
    if ep.sentinel_password is not None:
        sentinel_kwargs["password"] = ep.sentinel_password
        sentinel_kwargs["username"] = ep.sentinel_username
    tls = ep.tls_options()
    if tls:
        sentinel_kwargs.update(ssl=True, **tls)
        opts.update(connection_class=SentinelManagedSSLConnection, **tls)
    manager = Sentinel(list(ep.sentinels), min_other_sentinels=ep.min_other_sentinels,
                       sentinel_kwargs=sentinel_kwargs)
    if "credential_provider" not in opts:
        opts.update(username=ep.username, password=ep.password)
    client: redis.Redis[bytes] = manager.master_for(
        ep.service, redis_class=redis.Redis, connection_pool_class=_FollowingPool,
        db=ep.db, on_master_change=on_master_change, **opts,
    )
    return client


__all__ = ["FAILOVER_RETRY", "RetryPolicy", "connect"]
