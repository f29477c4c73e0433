"""redis-py's CredentialProvider for the agent: its node's login, fetched from the issuer.

Fetched at the first connection, again once half its TTL has passed (at the next new
connection; connections already logged in stay so), and again when Redis refuses it
(``on_connect``: the user was rotated away, or Redis restarted or failed over and lost
its ACL users, which are not replicated). If a refresh fails while the cached login is
still inside its TTL, the cached one is used. Every failure surfaces as a
``redis.ConnectionError``, which the agent's Redis code already treats as "Redis is
unreachable, retry with backoff".

After a failed fetch the issuer is not asked again before a backoff (doubling from 1 s
to 60 s; 60 s at once for a refused token, which only a new token can fix): thousands
of agents whose logins Redis just lost (a failover) must not turn into a request storm.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from vpcnet.credentials.client import fetch_node_credential
from vpcnet.credentials.errors import CredentialDenied, CredentialUnavailable
from vpcnet.settings import AgentSettings
from vpcnet.state.acl import NodeCredential

log = logging.getLogger(__name__)

Fetch = Callable[[str], NodeCredential]  # token -> credential
_BACKOFF_FIRST = 1.0
_BACKOFF_MAX = 60.0


class NodeCredentialProvider(redis.CredentialProvider):
    def __init__(
        self,
        node: str,
        token_path: str,
        fetch: Fetch,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.token_path = Path(token_path)
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._cred: NodeCredential | None = None
        self._refresh_at = 0.0
        self._expires_at = 0.0
        self._retry_at = 0.0  # no fetch before this after a failure
        self._backoff = _BACKOFF_FIRST
        self._last_error: Exception | None = None
        self.fetches = 0  # successful fetches (a new password each)
        self.attempts = 0  # fetches tried

    @classmethod
    def from_issuer(cls, node: str, token_path: str, issuer_url: str,
                    ca_file: str | None = None) -> NodeCredentialProvider:
        def fetch(token: str) -> NodeCredential:
            return fetch_node_credential(issuer_url, token, ca_file=ca_file)

        return cls(node, token_path, fetch)

    def get_credentials(self) -> tuple[str, str]:
        with self._lock:
            now = self._clock()
            if (self._cred is None or now >= self._refresh_at) and now >= self._retry_at:
                try:
                    self.attempts += 1
                    self._store(self._fetch_checked(), now)
                except (CredentialDenied, CredentialUnavailable, OSError) as e:
                    self._failed(e, now)
            if self._cred is None or now >= self._expires_at:
                raise redis.ConnectionError(
                    f"no Redis credential for node {self.node}: {self._last_error}"
                ) from self._last_error
            return self._cred.username, self._cred.password

    def on_connect(self, conn: Any) -> None:
        """``redis_connect_func``: log in; if Redis refuses the login, fetch a new one once."""
        seen = self.fetches
        try:
            conn.on_connect()
        except redis.AuthenticationError as e:
            with self._lock:
                if self.fetches == seen:  # nobody fetched a newer one meanwhile
                    log.info("Redis refused node %s's credential (%s): fetching a new one",
                             self.node, e)
                    self._cred = None
            conn.on_connect()

    def _fetch_checked(self) -> NodeCredential:
        token = self.token_path.read_text().strip()  # kubelet rotates the file: read it each time
        cred = self._fetch(token)
        if cred.node != self.node:
            # The issuer answers for the node the token names: a mismatch means this
            # agent runs with another pod's token (misconfiguration), never use it.
            raise CredentialDenied(f"issuer answered for node {cred.node!r}, not {self.node!r}")
        return cred

    def _failed(self, error: Exception, now: float) -> None:
        self._last_error = error
        delay = _BACKOFF_MAX if isinstance(error, CredentialDenied) else self._backoff
        self._retry_at = now + delay
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX)
        if self._cred is not None and now < self._expires_at:
            log.warning("credential refresh failed, using the current one: %s", error)
        else:
            log.warning("no credential for node %s (next try in %.0f s): %s",
                        self.node, delay, error)

    def _store(self, cred: NodeCredential, now: float) -> None:
        self._retry_at = 0.0
        self._backoff = _BACKOFF_FIRST
        self._last_error = None
        self._cred = cred
        self._refresh_at = now + cred.ttl_seconds / 2
        self._expires_at = now + cred.ttl_seconds
        self.fetches += 1


def node_credentials(settings: AgentSettings) -> NodeCredentialProvider | None:
    """The agent's provider, or None when no issuer is configured (login in the URL)."""
    if not settings.credentials_url:
        return None
    return NodeCredentialProvider.from_issuer(
        settings.node_name, settings.credentials_token_path, settings.credentials_url,
        ca_file=settings.credentials_ca_file or None,
    )
