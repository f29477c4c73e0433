"""A hostile agent for the chaos run: node A's own Redis credential, aimed at everyone else.

Invariant 8 says one broken node cannot hurt the others. Here node A is compromised: the
attacker holds the credential the issuer gave A's agent (``NodeAclUsers(...).issue(A)``,
made with the issuer's own ACL user, the ``credentials`` user of docs/deploy.md) and,
for the whole run, keeps trying what would hurt node B and the control plane:

- add B's in-use IPs to B's ``release-ok`` and ``release-req`` (the warm pass would then
  unassign them in EC2: invariant 1), overwrite B's ``instance_id``, fake B's agent ready,
  drop B's ENI list, take or delete B's lock;
- push forged tasks on the Celery queues, steal from them, read the unacked hash;
- take or delete beat's lock; run a script on B's keys; FLUSHALL; make itself an admin.

Every attempt must come back NOPERM. An attempt the server executed or refused for any
other reason (WRONGTYPE, READONLY …: the ACL let it through) is a *success*, a violation.
An attempt that got no answer (the connection dropped in a failover or restart) is
counted apart. ACL users are neither replicated nor persisted, so after a failover or a
restart A's user is gone; the attacker then does what A's agent would: logs in again
with a fresh credential from the issuer. It also reads one of A's own keys each round,
which proves it is logged in (so refusals are not just a failed login).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.credentials import UsernamePasswordCredentialProvider
from redis.retry import Retry

from vpcnet.state.acl_users import NodeAclUsers
from vpcnet.state.connection import connect
from vpcnet.state.keys import ClusterKeys
from vpcnet.tasknames import EC2_QUEUE, SCAN_QUEUE

ISSUER_USER = "credentials"
# Celery's Redis transport keys (kombu): the queues vpcnet uses and the unacked index.
QUEUES = (EC2_QUEUE, SCAN_QUEUE, "celery")


def issuer_rules(cluster: str, password_sha256: str) -> tuple[str, ...]:
    """``ACL SETUSER credentials`` arguments: the issuer's user as docs/deploy.md's ACL
    file declares it (create/delete users, its own credentials keys, nothing else)."""
    keys = ClusterKeys(cluster)
    return ("on", f"#{password_sha256}", "resetkeys", "resetchannels", f"~{keys.credentials}*",
            "-@all", "+acl|setuser", "+acl|deluser", "+acl|getuser", "+zadd", "+zrange",
            "+zrem", "+sadd", "+srem", "+smembers", "+del", "+multi", "+exec", "+discard",
            "+ping")


@dataclass(frozen=True)
class Victim:
    """What the attacker knows of node B: its name, instance and the IPs its pods hold."""

    node: str
    instance_id: str
    in_use_ips: tuple[str, ...]


Attempt = Callable[["redis.Redis[bytes]"], object]


def attempts_on(keys: ClusterKeys, attacker_user: str, attacker_iid: str,
                victim: Victim) -> dict[str, Attempt]:
    """Everything the attacker tries in one round against ``victim`` and the cluster."""
    b = keys.node(victim.node)
    ips = victim.in_use_ips or ("10.0.0.9",)
    return {
        "release-ok of B: in-use IPs": lambda r: r.sadd(b.release_ok, *ips),
        "release-req of B: in-use IPs": lambda r: r.sadd(b.release_req, *ips),
        "node of B: overwrite instance_id": lambda r: r.hset(b.node, "instance_id", attacker_iid),
        "agent of B: fake ready": lambda r: r.hset(b.agent, "ready", "1"),
        "enis of B: delete": lambda r: r.delete(b.enis),
        "assigned of B: delete": lambda r: r.delete(b.assigned),
        "lock of B: take": lambda r: r.set(b.lock, "hostile", px=60_000),
        "lock of B: delete": lambda r: r.delete(b.lock),
        "script on B": lambda r: r.execute_command(
            "EVAL", "return redis.call('sadd', KEYS[1], ARGV[1])", "1", b.release_ok, ips[0]),
        **{f"queue {q}: forge a task": _forge(q) for q in QUEUES},
        "queue ec2: steal a task": lambda r: r.rpop(EC2_QUEUE),
        "unacked: read": lambda r: r.hgetall("unacked"),
        "beat-lock: take": lambda r: r.set(keys.beat_lock, "hostile", px=60_000),
        "beat-lock: delete": lambda r: r.delete(keys.beat_lock),
        "FLUSHALL": lambda r: r.execute_command("FLUSHALL"),
        "ACL SETUSER itself admin": lambda r: r.execute_command(
            "ACL", "SETUSER", attacker_user, "~*", "+@all"),
    }


def _forge(queue: str) -> Attempt:
    return lambda r: r.lpush(queue, "forged-task")


@dataclass
class HostileReport:
    attacker: str = ""
    logins: int = 0
    own_reads_ok: int = 0  # reads of A's own keys that worked: the login was real
    attempts: int = 0  # sent
    refused: int = 0  # NOPERM
    unanswered: int = 0  # no answer (failover, restart): neither refused nor done
    by_attempt: dict[str, int] = field(default_factory=dict)  # refusals by attempt
    successes: list[str] = field(default_factory=list)  # each a violation
    login_failures: list[str] = field(default_factory=list)


class HostileAgent(threading.Thread):
    """Node ``attacker``'s credential, used against ``victims()`` until ``stop_event``."""

    def __init__(self, url: str, cluster: str, attacker: str, attacker_iid: str,
                 issuer: Callable[[], redis.Redis[bytes]],
                 victims: Callable[[], list[Victim]], pause: float = 0.2) -> None:
        super().__init__(name=f"hostile-{attacker}", daemon=True)
        self.url = url
        self.cluster = cluster
        self.keys = ClusterKeys(cluster)
        self.attacker = attacker
        self.attacker_iid = attacker_iid
        self.issuer = issuer
        self.victims = victims
        self.pause = pause
        self.stop_event = threading.Event()
        self.report = HostileReport(attacker=attacker)
        self._refused: Counter[str] = Counter()
        self._client: redis.Redis[bytes] | None = None
        self._user = ""
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.round()
            except _Relogin:
                pass
            except Exception as e:
                with self._lock:
                    self.report.login_failures.append(f"{type(e).__name__}: {e}"[:300])
                self._drop()
            self.stop_event.wait(self.pause)
        self._drop()

    def round(self) -> None:
        client = self._login()
        try:
            client.hgetall(self.keys.node(self.attacker).node)
            with self._lock:
                self.report.own_reads_ok += 1
        except (redis.ConnectionError, redis.TimeoutError):
            self._drop()  # a failover or restart; its user may be gone: log in again
            return
        for victim in self.victims():
            for name, attempt in attempts_on(self.keys, self._user, self.attacker_iid, victim).items():
                if self.stop_event.is_set():
                    return
                self._try(client, name, victim, attempt)

    def _try(self, client: redis.Redis[bytes], name: str, victim: Victim, attempt: Attempt) -> None:
        with self._lock:
            self.report.attempts += 1
        try:
            result = attempt(client)
        except redis.exceptions.NoPermissionError:
            with self._lock:
                self.report.refused += 1
                self._refused[name] += 1
            return
        except (redis.ConnectionError, redis.TimeoutError):
            with self._lock:
                self.report.unanswered += 1
            self._drop()
            raise _Relogin() from None
        except redis.ResponseError as e:  # past the ACL: the server judged the command
            result = f"{type(e).__name__}: {e}"
        with self._lock:
            self.report.successes.append(f"{name} ({victim.node}): {result!r}"[:300])

    def _login(self) -> redis.Redis[bytes]:
        if self._client is not None:
            return self._client
        issuer = self.issuer()
        try:
            cred = NodeAclUsers(issuer, self.cluster).issue(self.attacker)
        finally:
            issuer.close()
        self._user = cred.username
        self._client = connect(
            self.url, socket_timeout=3, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            credential_provider=UsernamePasswordCredentialProvider(cred.username, cred.password),
        )
        with self._lock:
            self.report.logins += 1
        return self._client

    def _drop(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                client.close()
            except Exception:
                pass

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            r = self.report
            return {
                "attacker": r.attacker, "logins": r.logins, "own_reads_ok": r.own_reads_ok,
                "attempts": r.attempts, "refused": r.refused, "unanswered": r.unanswered,
                "successes": list(r.successes), "by_attempt": dict(sorted(self._refused.items())),
                "login_failures": len(r.login_failures),
                "last_login_failure": r.login_failures[-1] if r.login_failures else None,
            }


class _Relogin(Exception):
    """The connection dropped mid-round: log in again on the next round."""


__all__ = ["HostileAgent", "HostileReport", "ISSUER_USER", "Victim", "attempts_on", "issuer_rules"]
