"""redis-py's CredentialProvider for the agent: its node's login, fetched from the issuer.

Fetched at the first connection, again once half its TTL has passed (at the next new
connection; connections already logged in stay so), and again when Redis refuses it
(``on_connect``: the user was rotated away, or Redis restarted or failed over and lost
its ACL users, which are not replicated). If a refresh fails while the cached login is
still inside its TTL, the cached one is used. Every failure surfaces as a
``redis.ConnectionError``, which the agent's Redis code already treats as "Redis is
unreachable, retry with backoff".
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
        self.fetches = 0  # successful fetches (a new password each)

    @classmethod
    def from_issuer(cls, node: str, token_path: str, issuer_url: str,
                    ca_file: str | None = None) -> NodeCredentialProvider:
        def fetch(token: str) -> NodeCredential:
            return fetch_node_credential(issuer_url, token, ca_file=ca_file)

        return cls(node, token_path, fetch)

    def get_credentials(self) -> tuple[str, str]:
        with self._lock:
            now = self._clock()
            if self._cred is None or now >= self._refresh_at:
                try:
                    self._store(self._fetch_checked(), now)
                except (CredentialDenied, CredentialUnavailable, OSError) as e:
                    if self._cred is not None and now < self._expires_at:
                        log.warning("credential refresh failed, using the current one: %s", e)
                    else:
                        raise redis.ConnectionError(
                            f"no Redis credential for node {self.node}: {e}"
                        ) from e
            assert self._cred is not None
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

    def _store(self, cred: NodeCredential, now: float) -> None:
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
