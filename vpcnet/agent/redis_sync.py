"""The agent's side of Redis: follow the node's desired state, mirror the pool back.

Reads (``read_node``): the node's ``node`` hash, ``enis`` hash and ``release-req`` set,
written by the control plane. A subscriber thread listens on the node's ``changed``
channel and wakes the agent's loop within a second of a publish; the loop also resyncs
periodically, so a missed message costs at most one resync interval.

Writes: ``assigned`` / ``cooldown`` mirror the IPAM's changes, ``release-ok`` confirms
released IPs, ``agent`` carries the readiness report (``vpcnet.state.records.AgentRecord``:
the store version programmed and any rollback seen), and the node name is published on
the cluster's ``agent-ready`` channel once per programmed write. ``demand`` carries the
number of ADDs waiting for the pool to grow; when it rises the node name is published on
``agent-ready`` too, so that the watcher enqueues a provisioning pass at once.

Redis may be unreachable at any time: ADD/DEL never wait on it. IPAM changes are
queued (coalesced per IP, newest wins) and flushed by a mirror thread; after any
failed write the next successful flush rewrites the whole mirror from the IPAM (the
local checkpoint is the truth), so the mirror reconciles when Redis is back.

IPv6 (``Ipam6``) shares the mirror: its addresses are in ``assigned`` next to the IPv4
ones (ip string -> Assignment JSON), a freed one leaves it (no cooldown set: the /80's
cursor moves on instead), ``release-req`` entries that are /80 CIDR strings are the
prefixes asked back and ``release-ok`` gets the same strings once given up. ``demand``
counts the ADDs waiting for either family.

``release-ok`` (both families, one rule): it names an IP or /80 only once the agent's
checkpoint on disk holds it as released (``durable``, the releases of the payload last
written). Were it written first, an agent crashing in between would restart from a
checkpoint that still has the IP in its pool while the control plane, told it is unused,
unassigns it in EC2: a pod would get an address EC2 no longer gives the node
(invariants 1 and 8). So the mirror never writes a confirmation from the pools'
changes, the full rewrite adds only durable ones, and ``confirm_released[6]`` (called
after the checkpoint write) drops any that are not durable yet: the next pass, after
its own write, confirms them.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from vpcnet.agent.ipam import ChangeKind, Ipam, IpamChange, PoolStats
from vpcnet.agent.ipam6 import Ipam6, Ipv6Change
from vpcnet.agent.pools import Released
from vpcnet.credentials.provider import NodeCredentialProvider
from vpcnet.domain import IPV6_PREFIX_LEN, EniRecord, IPv4, IPv6Net
from vpcnet.errors import StateError
from vpcnet.state.connection import connect
from vpcnet.state.keys import ClusterKeys, NodeKeys
from vpcnet.state.records import AgentRecord, StoreVersion

log = logging.getLogger(__name__)

_SOCKET_TIMEOUT = 2.0
_CONNECT_TIMEOUT = 1.0
_MAX_BACKOFF = 5.0
# When ADDs start waiting, the demand is written this much later: the rest of a burst
# arrives meanwhile, so the one provisioning pass it triggers is sized for all of it
# (the pass takes far longer than this to reach EC2 anyway).
DEMAND_COALESCE_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class NodeState:
    """The control plane's view of this node, as last read from Redis."""

    version: StoreVersion
    enis: tuple[EniRecord, ...]
    node: Mapping[str, str] = field(default_factory=dict)
    release_req: frozenset[IPv4] = frozenset()
    release_req6: frozenset[IPv6Net] = frozenset()  # /80s asked back

    @property
    def generation(self) -> int:
        return self.version.generation

    @property
    def configured(self) -> bool:
        """The control plane has written ENIs for this node (a generation exists)."""
        return self.generation > 0 and bool(self.enis)


@dataclass(frozen=True, slots=True)
class AgentReport:
    ready: bool
    generation: int
    stats: PoolStats
    version: str
    error: str = ""
    epoch: str = ""  # with generation and write_id: the store version programmed
    write_id: str = ""
    rollback: str = ""  # the epoch in which the store was seen going back, or empty
    assigned6: int = 0  # IPv6 pod addresses assigned (the IPv6 pool's allocations)

    @property
    def programmed(self) -> StoreVersion:
        return StoreVersion(self.epoch, self.generation, self.write_id)


def _decode(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


class RedisSync:
    def __init__(
        self,
        redis_url: str,
        cluster: str,
        node: str,
        ipam: Ipam,
        *,
        wake: threading.Event,
        clock: Callable[[], float] = time.time,
        credentials: NodeCredentialProvider | None = None,
        ipam6: Ipam6 | None = None,
        durable: Callable[[], Released] | None = None,
    ) -> None:
        self.keys: NodeKeys = ClusterKeys(cluster).node(node)
        self.cluster_keys = ClusterKeys(cluster)
        self.node_name = node
        self.ipam = ipam
        self.ipam6 = ipam6 if ipam6 is not None else Ipam6()
        self.wake = wake
        self._clock = clock
        # What the checkpoint on disk holds as released. Without it (a caller whose pool
        # is its own checkpoint, e.g. the embedded stand-in) ``confirm_released[6]``
        # write what they are given and the full rewrite confirms nothing.
        self._durable = durable
        # With ``credentials`` the node's own ACL user (fetched from the issuer, replaced
        # when Redis refuses it), else whatever ``redis_url`` carries.
        login: dict[str, Any] = {}
        if credentials is not None:
            login = {"credential_provider": credentials,
                     "redis_connect_func": credentials.on_connect}
        self._client = connect(
            redis_url,
            socket_timeout=_SOCKET_TIMEOUT,
            socket_connect_timeout=_CONNECT_TIMEOUT,
            retry_on_timeout=False,
            **login,
            # A failover may have lost acknowledged mirror writes: rewrite them all.
            on_master_change=self.request_full_mirror,
        )
        self._pending: dict[str, IpamChange | Ipv6Change] = {}  # by ip (or /80) string
        self._pending_lock = threading.Lock()
        self._pending_event = threading.Event()
        self._full_resync = True  # the first flush rewrites the mirror from the IPAM
        self._demand_written: int | None = None  # as Redis holds it (None: unknown)
        self._demand_pool = -1  # the pool size when demand was last published
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._published: StoreVersion | None = None
        self.connected = False  # last Redis operation succeeded
        self.mirror_flushes = 0
        ipam.add_listener(self._on_ipam_change)
        ipam.add_demand_listener(self.set_demand)
        self.ipam6.add_listener(self._on_ipam6_change)
        self.ipam6.add_demand_listener(self.set_demand)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._subscribe_loop, "redis-sub"), (self._mirror_loop, "redis-mirror")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._pending_event.set()
        for t in self._threads:
            t.join(timeout)
        self._client.close()

    # -- reads -------------------------------------------------------------------------

    def read_node(self) -> NodeState:
        """The node's desired state; StateError when Redis cannot be read."""
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.hgetall(self.keys.node)
                pipe.hgetall(self.keys.enis)
                pipe.smembers(self.keys.release_req)
                node_raw, enis_raw, release_raw = pipe.execute()
        except redis.RedisError as e:
            self._mark(False)
            raise StateError(f"cannot read node state from Redis: {e}") from e
        self._mark(True)
        node = {_decode(k): _decode(v) for k, v in node_raw.items()}
        enis = []
        for eni_id, raw in enis_raw.items():
            try:
                enis.append(EniRecord.from_json(raw))
            except (ValueError, KeyError, TypeError) as e:
                # One bad record must not hide the others; the audit reports it.
                log.error("skipping malformed ENI record %s: %r", _decode(eni_id), e)
        release: set[IPv4] = set()
        release6: set[IPv6Net] = set()
        for raw in release_raw:
            text = _decode(raw)
            try:
                if "/" in text:
                    prefix = ipaddress.IPv6Network(text)  # strict: a prefix's own CIDR
                    if prefix.prefixlen != IPV6_PREFIX_LEN:
                        raise ValueError(f"not a /{IPV6_PREFIX_LEN}")
                    release6.add(prefix)
                else:
                    release.add(ipaddress.IPv4Address(text))
            except ValueError:
                log.error("skipping malformed release-req entry %r", raw)
        return NodeState(
            version=StoreVersion.from_fields(node),
            enis=tuple(sorted(enis, key=lambda e: e.device_index)),
            node=node,
            release_req=frozenset(release),
            release_req6=frozenset(release6),
        )

    # -- writes ------------------------------------------------------------------------

    def confirm_released(self, ips: set[IPv4]) -> None:
        """``release-ok`` for the IPs the IPAM gave up whose release is on disk
        (idempotent set add); call it after the checkpoint write."""
        if ips and self._durable is not None:
            ips = ips & self._durable().ips
        self._confirm({str(ip) for ip in ips})

    def confirm_released6(self, prefixes: set[IPv6Net]) -> None:
        """``release-ok`` for the /80s the IPv6 pool gave up whose release is on disk
        (their CIDR strings); call it after the checkpoint write."""
        if prefixes and self._durable is not None:
            prefixes = prefixes & self._durable().prefixes
        self._confirm({str(p) for p in prefixes})

    def _confirm(self, entries: set[str]) -> None:
        if not entries:
            return
        try:
            self._client.sadd(self.keys.release_ok, *sorted(entries))
        except redis.RedisError as e:
            self._mark(False)
            raise StateError(f"cannot write release-ok: {e}") from e
        self._mark(True)

    def report(self, r: AgentReport) -> None:
        """Write the ``agent`` hash; publish ``agent-ready`` once per ready write."""
        record = AgentRecord(
            ready=r.ready,
            epoch=r.epoch,
            generation=r.generation,
            write_id=r.write_id,
            rollback=r.rollback,
            heartbeat=self._clock(),
            free=r.stats.free,
            assigned=r.stats.assigned,
            cooldown=r.stats.cooldown,
            version=r.version,
            error=r.error,
            assigned6=r.assigned6,
        )
        publish = r.ready and r.programmed != self._published
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(self.keys.agent, mapping=record.to_redis())
                if publish:
                    pipe.publish(self.cluster_keys.agent_ready_channel, self.node_name)
                pipe.execute()
        except redis.RedisError as e:
            self._mark(False)
            raise StateError(f"cannot write the agent report: {e}") from e
        self._mark(True)
        if publish:
            self._published = r.programmed
            log.info("agent ready for %s (published)", r.programmed.describe())

    def request_full_mirror(self) -> None:
        """Rewrite the whole mirror on the next flush (periodic resync)."""
        with self._pending_lock:
            self._full_resync = True
        self._pending_event.set()

    def set_demand(self, waiting: int) -> None:
        """Called by the IPAM under its lock: queue, never block."""
        self._pending_event.set()

    def _write_demand(self) -> None:
        """Write ``demand``; publish when ADDs start waiting, or still wait after the pool
        changed (a pass sized by an earlier count fell short): one provisioning pass per
        episode, not one per waiting ADD."""
        waiting, pool = self.ipam.demand_report()
        waiting += self.ipam6.demand
        pool += len(self.ipam6.usable())  # a /80 arriving is a change of the pool
        if waiting == self._demand_written:
            return
        publish = waiting > 0 and (not self._demand_written or pool != self._demand_pool)
        with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.demand, mapping={
                "waiting": waiting, "pool": pool, "at": f"{self._clock():.6f}"})
            if publish:
                pipe.publish(self.cluster_keys.agent_ready_channel, self.node_name)
            pipe.execute()
        self._demand_written = waiting
        if publish:
            self._demand_pool = pool
            log.info("%d ADDs wait for the pool to grow (demand published)", waiting)

    # -- mirror ------------------------------------------------------------------------

    def _on_ipam_change(self, change: IpamChange) -> None:
        # Runs under the IPAM lock on the ADD/DEL path: enqueue only, never block.
        with self._pending_lock:
            self._pending[str(change.ip)] = change
        self._pending_event.set()

    def _on_ipam6_change(self, change: Ipv6Change) -> None:
        # Under the IPv6 pool's lock: enqueue only.
        with self._pending_lock:
            self._pending[str(change.ip if change.ip is not None else change.prefix)] = change
        self._pending_event.set()

    def _mirror_loop(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            self._pending_event.wait()
            if self._stop.is_set():
                return
            self._pending_event.clear()
            if not self._demand_written and self.ipam.demand:
                self._stop.wait(DEMAND_COALESCE_SECONDS)
            try:
                self.flush()
                backoff = 0.1
            except StateError as e:
                log.warning("mirror to Redis deferred: %s", e)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                self._pending_event.set()  # try again

    def flush(self) -> None:
        """Write queued changes (or the whole mirror after a failure) to Redis."""
        with self._pending_lock:
            batch, self._pending = self._pending, {}
            full, self._full_resync = self._full_resync, False
        try:
            if full:
                self._demand_written = None
                self._write_full()
            elif batch:
                self._write_changes(batch.values())
            self._write_demand()
        except redis.RedisError as e:
            with self._pending_lock:
                # Everything is rewritten from the IPAM once Redis answers again.
                self._full_resync = True
            self._demand_written = None
            self._mark(False)
            raise StateError(f"cannot mirror the pool to Redis: {e}") from e
        self._mark(True)
        self.mirror_flushes += 1

    def _write_full(self) -> None:
        allocations = self.ipam.allocations()
        cooldown = self.ipam.cooldown()
        assigned: dict[str | bytes, bytes | float | int | str] = {
            str(a.ip): a.to_assignment().to_json() for a in allocations}
        assigned.update({str(a.ip): a.to_assignment().to_json() for a in self.ipam6.allocations()})
        confirmed = self._durably_released()
        with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.assigned, self.keys.cooldown)
            if assigned:
                pipe.hset(self.keys.assigned, mapping=assigned)
            if cooldown:
                pipe.zadd(self.keys.cooldown, {str(ip): t for ip, t in cooldown.items()})
            if confirmed:
                pipe.sadd(self.keys.release_ok, *sorted(confirmed))
            pipe.execute()

    def _durably_released(self) -> set[str]:
        """Released in the pools and in the checkpoint on disk (not an IP the pools
        forgot since, having seen it leave the ENIs)."""
        if self._durable is None:
            return set()
        durable = self._durable()
        return ({str(ip) for ip in self.ipam.released() & durable.ips}
                | {str(p) for p in self.ipam6.released() & durable.prefixes})

    def _write_changes(self, changes: Any) -> None:
        with self._client.pipeline(transaction=True) as pipe:
            for c in changes:
                if isinstance(c, Ipv6Change):
                    self._queue_change6(pipe, c)
                    continue
                ip = str(c.ip)
                if c.kind is ChangeKind.ASSIGN and c.allocation is not None:
                    pipe.hset(self.keys.assigned, ip, c.allocation.to_assignment().to_json())
                    pipe.zrem(self.keys.cooldown, ip)
                elif c.kind is ChangeKind.RELEASE:
                    pipe.hdel(self.keys.assigned, ip)
                    pipe.zadd(self.keys.cooldown, {ip: c.freed_at or self._clock()})
                elif c.kind is ChangeKind.DROP:
                    pipe.hdel(self.keys.assigned, ip)
                    pipe.zrem(self.keys.cooldown, ip)
                # CONFIRM: not from here, for either family (see the module doc):
                # ``confirm_released`` writes release-ok once the checkpoint is on disk.
                # VANISH: the pod still holds the IP; it stays in ``assigned``.
            pipe.execute()

    def _queue_change6(self, pipe: Any, c: Ipv6Change) -> None:
        if c.kind is ChangeKind.ASSIGN and c.allocation is not None:
            pipe.hset(self.keys.assigned, str(c.ip), c.allocation.to_assignment().to_json())
        elif c.kind is ChangeKind.DROP:
            pipe.hdel(self.keys.assigned, str(c.ip))
        # CONFIRM: not from here (see the module doc): ``confirm_released6``.
        # VANISH: the pod still holds the address; it stays in ``assigned``.

    # -- subscription ------------------------------------------------------------------

    def _subscribe_loop(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.keys.changed_channel)
                # Anything published while we were not subscribed is caught up now.
                self.wake.set()
                backoff = 0.1
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=0.5)
                    if msg is not None:
                        self.wake.set()
            except redis.RedisError as e:
                log.debug("subscription to %s lost: %s", self.keys.changed_channel, e)
                self._mark(False)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            finally:
                try:
                    pubsub.close()
                except redis.RedisError:
                    pass

    def _mark(self, ok: bool) -> None:
        if ok and not self.connected:
            # Redis is back: whatever was mirrored before may be stale or lost.
            with self._pending_lock:
                self._full_resync = True
            self._pending_event.set()
        self.connected = ok
