"""Creates and rotates the per-node Redis ACL users (the issuer's side of Redis).

Every issue adds a fresh random password to the node's user (``#<sha256>``) and applies
the node's rules again (:func:`vpcnet.state.acl.node_rules`); passwords issued more than
``ttl + grace`` ago are removed (``!<sha256>``), so the previous one keeps working while
an agent reconnects with it. Redis keeps only hashes; the issue times live in the
cluster's ``credentials:<node>`` zset, which only the issuer's user can reach.

Adding and removing single passwords commute, so two issuer replicas serving the same
node at once never drop each other's password (a ``resetpass`` + full list would).

What Redis does not do, and why it is fine here:

- ACL users are not replicated and not in the AOF: after a failover or a restart the
  users are gone, agents fail to authenticate, fetch a new credential and the issuer
  creates the user again on the server it now talks to.
- Removing a password does not end connections already authenticated with it; rotation
  bounds how long a leaked password opens *new* connections. Deleting the user (``sweep``
  of a node that stopped asking, ``revoke``) does end them.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

import redis

from vpcnet.errors import StateError
from vpcnet.state.acl import NodeCredential, check_node_name, node_rules, node_username
from vpcnet.state.keys import ClusterKeys


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


class NodeAclUsers:
    def __init__(
        self,
        client: redis.Redis[Any],
        cluster: str,
        *,
        ttl_seconds: float = 3600.0,
        grace_seconds: float = 300.0,
        max_passwords: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_seconds <= 0 or grace_seconds < 0 or max_passwords < 1:
            raise ValueError("ttl must be positive, grace not negative, max_passwords >= 1")
        self._client = client
        self.cluster = cluster
        self.keys = ClusterKeys(cluster)
        self.ttl = ttl_seconds
        self.grace = grace_seconds
        self.max_passwords = max_passwords
        self._clock = clock

    def username(self, node: str) -> str:
        return node_username(self.cluster, node)

    def issue(self, node: str) -> NodeCredential:
        """A new password for ``node``'s user (created if missing), older ones pruned."""
        user = self.username(node)  # validates the names before anything is written
        rules = node_rules(self.cluster, node)
        password = secrets.token_urlsafe(32)
        digest = hashlib.sha256(password.encode()).hexdigest()
        now = self._clock()
        key = self.keys.node_credentials(node)
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.zadd(key, {digest: now})
                pipe.sadd(self.keys.credentials, node)
                pipe.zrange(key, 0, -1, withscores=True)
                _, _, issued = pipe.execute()
            stale = self._stale(issued, now, keep=digest)
            self._setuser(user, [*rules, f"#{digest}"], stale)
            if stale:
                self._client.zrem(key, *stale)
        except redis.RedisError as e:
            raise StateError(f"cannot create the ACL user of node {node}: {e}") from e
        return NodeCredential(node=node, username=user, password=password, ttl_seconds=self.ttl)

    def sweep(self) -> int:
        """Remove expired passwords of every node; delete users left without one.

        Run periodically by the issuer: a node that stopped asking (deleted, or its agent
        gone) loses its user within ``ttl + grace``. Returns the passwords removed.
        """
        removed = 0
        try:
            nodes = sorted(_s(n) for n in self._client.smembers(self.keys.credentials))
            for node in nodes:
                removed += self._sweep_node(node)
        except redis.RedisError as e:
            raise StateError(f"cannot sweep node ACL users: {e}") from e
        return removed

    def revoke(self, node: str) -> None:
        """Delete ``node``'s user (ending its connections) and its password record."""
        user = self.username(node)
        try:
            self._client.execute_command("ACL", "DELUSER", user)
            with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(self.keys.node_credentials(node))
                pipe.srem(self.keys.credentials, node)
                pipe.execute()
        except redis.RedisError as e:
            raise StateError(f"cannot revoke the ACL user of node {node}: {e}") from e

    # -- internals ---------------------------------------------------------------------

    def _sweep_node(self, node: str) -> int:
        try:
            check_node_name(node)
        except ValueError:
            self._client.srem(self.keys.credentials, node)  # never written by issue()
            return 0
        key = self.keys.node_credentials(node)
        issued = self._client.zrange(key, 0, -1, withscores=True)
        stale = self._stale(issued, self._clock(), keep=None)
        if not stale:
            return 0
        if len(stale) == len(issued):
            self.revoke(node)
            return len(stale)
        self._setuser(self.username(node), [], stale)
        self._client.zrem(key, *stale)
        return len(stale)

    def _stale(self, issued: list[tuple[Any, float]], now: float, keep: str | None) -> list[str]:
        """Hashes past ``ttl + grace``, and the oldest beyond ``max_passwords``."""
        by_age = sorted(((score, _s(h)) for h, score in issued), reverse=True)  # newest first
        stale = []
        live = 0
        for score, digest in by_age:
            if digest == keep:
                live += 1
            elif score < now - self.ttl - self.grace or live >= self.max_passwords:
                stale.append(digest)
            else:
                live += 1
        return stale

    def _setuser(self, user: str, rules: list[str], remove: list[str]) -> None:
        """``ACL SETUSER`` (atomic: all rules or none), removing only hashes it holds.

        Removing a hash the user does not hold is an error in Redis; another issuer may
        have just removed it, so the user is read again once before giving up.
        """
        for attempt in (0, 1):
            present = self._passwords(user)
            if present is None and not rules:
                return  # the user is gone (e.g. Redis restarted): nothing to prune
            gone = [f"!{h}" for h in remove if present is not None and h in present]
            if not rules and not gone:
                return
            try:
                self._client.execute_command("ACL", "SETUSER", user, *rules, *gone)
                return
            except redis.ResponseError:
                if attempt:
                    raise

    def _passwords(self, user: str) -> set[str] | None:
        info = self._client.execute_command("ACL", "GETUSER", user)
        if info is None:
            return None
        if isinstance(info, dict):
            raw = info.get("passwords", info.get(b"passwords", []))
        else:  # RESP2 flat list: name, value, name, value, ...
            fields = dict(zip(info[::2], info[1::2], strict=False))
            raw = fields.get(b"passwords", fields.get("passwords", []))
        return {_s(p) for p in raw or ()}
