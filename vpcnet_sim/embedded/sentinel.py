"""A Redis Sentinel group on loopback: a primary, a replica and three sentinels.

Debian's ``redis-server`` and ``redis-sentinel`` as child processes on free ports, each
in a directory of its own under ``workdir``, always stopped by ``stop()``. It stands in
for ``RedisServer`` in the embedded stack (``url``, ``client()``, ``start()``,
``stop()``), with a Sentinel URL, so every vpcnet component connects through the
sentinels as it would in a cluster.

``lose_writes_in_failover`` produces the fault that asynchronous replication allows: a
failover that loses writes the primary acknowledged. How, exactly:

1. The replica's link is cut: ``CONFIG SET masterauth`` to a wrong password on the
   replica, then ``CLIENT KILL TYPE master`` there. It reconnects and is refused
   (WRONGPASS), so it stays a replica at its last offset; ``master_link_status:down``.
2. Writes go on to the primary and are acknowledged: a marker key, proven unreplicated
   by ``WAIT 1`` answering 0, and whatever the running system writes during ``window``.
3. The primary is frozen (``SIGSTOP``: a partition — its sockets stay open, so clients
   hang until their timeouts, as they do when a host drops off the network). The
   sentinels see it down (``down-after-milliseconds``), agree (quorum 2 of 3), elect a
   leader and promote the replica, which never received step 2's writes.
4. Once promoted, the replica's ``masterauth`` is put back, and the old primary is
   thawed (``SIGCONT``); the sentinels demote it to a replica of the new primary, which
   makes it drop its data and resync: the writes of step 2 are gone from every server.
   The report says whether the marker is absent from both.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from vpcnet_sim.embedded.procs import RedisServer, free_port, stop_process, wait_for

SERVICE = "vpcnet"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000
LOST_MARKER_PREFIX = "vpcnet-sentinel-test:lost:"


@dataclass(frozen=True)
class LostWriteFailover:
    """What one lossy failover did, measured."""

    old_primary_port: int
    new_primary_port: int
    marker_key: str
    marker_acked_replicas: int  # WAIT's answer for the marker: 0 = no replica had it
    unreplicated_bytes: int  # primary's offset minus the cut replica's, when frozen
    keys_lost_or_stale: int  # keys whose value the promoted replica lacked, when frozen
    failover_seconds: float  # primary frozen -> the sentinels name the replica primary
    frozen_at: float  # time.monotonic() when the primary was frozen
    promoted_at: float  # time.monotonic() when the replica had taken the primary role
    marker_on_new_primary: bool
    marker_on_old_primary: bool  # after it rejoined as a replica (False = lost everywhere)
    old_primary_rejoined: bool


class SentinelProcess:
    """One ``redis-sentinel`` with its own (rewritable) config file."""

    def __init__(self, workdir: Path, primary_port: int, password: str | None,
                 quorum: int = 2, down_after_ms: int = DOWN_AFTER_MS) -> None:
        binary = shutil.which("redis-sentinel")
        if binary is None:
            raise RuntimeError("redis-sentinel not found; run scripts/setup.sh "
                               "(Debian's redis-sentinel package)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.primary_port = primary_port
        self.password = password
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.proc: subprocess.Popen[bytes] | None = None

    def _config(self) -> str:
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.workdir}",
            "daemonize no",
            f"logfile {self.workdir / 'sentinel.log'}",
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} {self.quorum}",
            f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}",
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {SERVICE} 1",
        ]
        if self.password:
            lines.append(f"sentinel auth-pass {SERVICE} {self.password}")
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "sentinel.conf"
        conf.write_text(self._config())  # the sentinel rewrites it as it learns
        self.proc = subprocess.Popen([self.binary, str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def client(self) -> Any:  # the SENTINEL commands are untyped in redis' stubs
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                           socket_connect_timeout=1)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


class SentinelGroup:
    """Primary + replica + three sentinels; ``url`` is the group's Sentinel URL."""

    def __init__(self, workdir: Path, password: str | None = None,
                 down_after_ms: int = DOWN_AFTER_MS) -> None:
        self.workdir = workdir
        self.down_after_ms = down_after_ms
        self.password = password or secrets.token_urlsafe(16)
        self.servers = [self._server("a"), self._server("b")]
        self.primary, self.replica = self.servers
        self.sentinels: list[SentinelProcess] = []

    def _server(self, name: str) -> RedisServer:
        # Both know the password to sync from the other: either may be primary later.
        return RedisServer(self.workdir / name, password=self.password,
                           extra_args=("--masterauth", self.password,
                                       "--replica-serve-stale-data", "yes"))

    # -- what the stack needs of a Redis -------------------------------------------------

    def url_for_db(self, db: int) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://:{self.password}@{hosts}/{SERVICE}/{db}"

    @property
    def url(self) -> str:
        return self.url_for_db(0)

    def client(self) -> redis.Redis[bytes]:
        """A client of the current primary, through the sentinels (as components are)."""
        from vpcnet.state.connection import connect

        return connect(self.url, socket_timeout=5, socket_connect_timeout=1)

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.primary.start()
        self.replica.extra_args += ("--replicaof", "127.0.0.1", str(self.primary.port))
        self.replica.start()
        wait_for(lambda: self._link_up(self.replica), timeout, "the replica in sync")
        if not self.sentinels:
            self.sentinels = [
                SentinelProcess(self.workdir / f"sentinel-{i}", self.primary.port, self.password,
                                down_after_ms=self.down_after_ms)
                for i in range(3)
            ]
        for s in self.sentinels:
            s.start()
        wait_for(self._sentinels_ready, timeout, "three sentinels that know the replica and each other",
                 interval=0.2)

    def stop(self) -> None:
        for s in self.sentinels:
            s.stop()
        for server in self.servers:
            if server.proc is not None and server.proc.poll() is None:
                os.kill(server.proc.pid, signal.SIGCONT)  # a frozen one cannot exit
            server.stop()

    def kill(self) -> None:
        self.stop()

    # -- observation ---------------------------------------------------------------------

    def direct(self, server: RedisServer) -> redis.Redis[bytes]:
        """A client of that one server (not through the sentinels)."""
        return self._direct(server)

    def _direct(self, server: RedisServer) -> redis.Redis[bytes]:
        return redis.Redis(host="127.0.0.1", port=server.port, password=self.password,
                           socket_timeout=2, socket_connect_timeout=1)

    def _info(self, server: RedisServer, section: str) -> dict[str, object]:
        client = self._direct(server)
        try:
            return dict(client.info(section))
        finally:
            client.close()

    def replica_in_sync(self) -> bool:
        """The replica's link to the primary is up."""
        return self._link_up(self.replica)

    def _link_up(self, server: RedisServer) -> bool:
        try:
            info = self._info(server, "replication")
        except redis.RedisError:
            return False
        return info.get("role") == "slave" and info.get("master_link_status") == "up"

    def _sentinels_ready(self) -> bool:
        for s in self.sentinels:
            client = s.client()
            try:
                master = client.sentinel_master(SERVICE)
                replicas = client.sentinel_slaves(SERVICE)
            except redis.RedisError:
                return False
            finally:
                client.close()
            if int(master.get("num-other-sentinels", 0)) < len(self.sentinels) - 1:
                return False
            if int(master["port"]) != self.primary.port:
                return False
            if not any(int(r["port"]) == self.replica.port and not r.get("is_sdown")
                       for r in replicas):
                return False
        return True

    def named_primary_port(self) -> int | None:
        """The primary's port as a majority of the sentinels name it (None: no majority)."""
        votes: dict[int, int] = {}
        for s in self.sentinels:
            client = s.client()
            try:
                addr = client.sentinel_get_master_addr_by_name(SERVICE)
            except redis.RedisError:
                continue
            finally:
                client.close()
            if addr:
                votes[int(addr[1])] = votes.get(int(addr[1]), 0) + 1
        for port, n in votes.items():
            if n * 2 > len(self.sentinels):
                return port
        return None

    # -- the fault -----------------------------------------------------------------------

    def lose_writes_in_failover(self, window: float = 0.0, rejoin_timeout: float = 60.0,
                                cluster_prefix: str = "",
                                during: Callable[[], None] | None = None) -> LostWriteFailover:
        """A failover that loses acknowledged writes (see the module doc, steps 1–4).

        ``window``: seconds the running system keeps writing to the cut-off primary
        before it is frozen; keep it under about 8 x ``down_after_ms``: the sentinels
        refuse to promote a replica cut off for longer than 10 x down-after plus the
        time the primary has been down (``-failover-abort-no-good-slave``).
        ``cluster_prefix``: keys compared to count what was lost. ``during``: called
        while the link is cut (after ``window``), to make the writes that will be lost."""
        if window * 1000 > 8 * self.down_after_ms:
            raise ValueError(f"window {window}s too long for down-after {self.down_after_ms} ms")
        old, new = self.primary, self.replica
        wait_for(lambda: self._link_up(new), 30, "the replica in sync before the cut")
        new_c, old_c = self._direct(new), self._direct(old)
        try:
            # 1. cut the replica's link; it retries and is refused
            new_c.config_set("masterauth", "not-the-" + secrets.token_hex(4))
            new_c.client_kill_filter(_type="master")
            wait_for(lambda: not self._link_up(new), 10, "the replica's link cut")
            # 2. acknowledged writes the replica never gets
            marker = LOST_MARKER_PREFIX + secrets.token_hex(6)
            old_c.set(marker, "acknowledged")
            acked = int(old_c.execute_command("WAIT", 1, 200))
            if window > 0:
                time.sleep(window)
            if during is not None:
                during()
            unreplicated = (int(str(self._info(old, "replication")["master_repl_offset"]))
                            - int(str(self._info(new, "replication")["slave_repl_offset"])))
            lost_keys = _keys_differing(old_c, new_c, cluster_prefix)
        finally:
            old_c.close()
        # 3. freeze the primary; the sentinels promote the replica
        assert old.proc is not None
        frozen_at = time.monotonic()
        os.kill(old.proc.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: self.named_primary_port() == new.port, 60,
                     "the sentinels to promote the replica", interval=0.05)
            wait_for(lambda: self._info(new, "replication").get("role") == "master", 30,
                     "the replica to take the primary role", interval=0.05)
            promoted_at = time.monotonic()
            failover_seconds = promoted_at - frozen_at
            new_c.config_set("masterauth", self.password)
            marker_on_new = bool(new_c.exists(marker))
        finally:
            # 4. thaw the old primary; the sentinels make it a replica of the new one
            os.kill(old.proc.pid, signal.SIGCONT)
            new_c.close()
        self.primary, self.replica = new, old
        rejoined = True
        try:
            wait_for(lambda: self._link_up(old), rejoin_timeout,
                     "the old primary to resync as a replica", interval=0.2)
        except TimeoutError:
            rejoined = False
        old_c = self._direct(old)
        try:
            marker_on_old = bool(old_c.exists(marker))
        finally:
            old_c.close()
        return LostWriteFailover(
            old_primary_port=old.port,
            new_primary_port=new.port,
            marker_key=marker,
            marker_acked_replicas=acked,
            unreplicated_bytes=unreplicated,
            keys_lost_or_stale=lost_keys,
            failover_seconds=round(failover_seconds, 2),
            frozen_at=frozen_at,
            promoted_at=promoted_at,
            marker_on_new_primary=marker_on_new,
            marker_on_old_primary=marker_on_old,
            old_primary_rejoined=rejoined,
        )


def _keys_differing(primary: redis.Redis[bytes], replica: redis.Redis[bytes], prefix: str) -> int:
    """Keys under ``prefix`` whose serialized value the replica lacks or has older."""
    if not prefix:
        return 0
    n = 0
    for key in primary.scan_iter(match=prefix + "*", count=1000):
        if primary.dump(key) != replica.dump(key):
            n += 1
    return n


__all__ = ["LostWriteFailover", "SERVICE", "SentinelGroup", "SentinelProcess"]
