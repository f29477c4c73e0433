"""The node's IP pool, built from its ENIs (pure: no I/O).

Pool IPs are the ENIs' secondary IPs and every address of their delegated /28
prefixes. Each pool IP is in exactly one state: free, assigned to one attachment,
or cooling down after a release (not reusable before ``cooldown_seconds``, so that
peers' ARP and conntrack entries for the old pod expire first).

Two clocks: the cooldown is timed on the monotonic clock (a wall-clock step, NTP or
a hand-set date, neither blocks nor hurries it); the wall time an IP was freed is what
the checkpoint and the Redis mirror keep, because it means the same across restarts.
On load, the time left is rebuilt from it and clamped to ``[0, cooldown_seconds]``: a
wall clock that stepped back while the agent was down cannot stretch a cooldown
beyond its length.

An allocation may wait (``allocate(..., wait=seconds)``) for an IP that is coming: one
leaving the cooldown within the wait, or any IP while the pool can still grow
(``can_grow`` returns "" — the control plane may add IPs). Waiters are served in
arrival order; each sleeps on one condition until the next cooldown deadline, a new IP
(``set_enis``) or its own deadline, never longer. One that no IP can reach in time
fails at once, saying why (``PoolExhausted``). While the pool can grow, the waiters the
free IPs do not cover are the node's *demand*, reported to demand listeners (the Redis
mirror).

The key is the CNI attachment key (container id, ifname): allocating again for the
same key returns the same IP. IPs the control plane asks back (``release-req``) are
confirmed only when unused and then leave the pool until they leave the ENIs too.
IPs that vanish from the ENIs while assigned stay assigned (the pod still uses them)
and are reported in the ``EniDiff``, never silently dropped.

Thread-safe: one re-entrant lock guards the state; listeners run under it, in
order, and must be quick (enqueue, never block).
"""

from __future__ import annotations

import enum
import heapq
import ipaddress
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from vpcnet.domain import Assignment, EniRecord, IPv4
from vpcnet.errors import CheckpointError, ConfigError, PoolExhausted

CHECKPOINT_VERSION = 1


class AttachmentKey(NamedTuple):
    """The CNI attachment key; the network name is fixed (one vpcnet network per node)."""

    container_id: str
    ifname: str

    def __str__(self) -> str:
        return f"{self.container_id}/{self.ifname}"


@dataclass(frozen=True, slots=True)
class Allocation:
    key: AttachmentKey
    ip: IPv4
    eni: EniRecord
    pod_namespace: str = ""
    pod_name: str = ""
    since: float = 0.0

    def to_assignment(self) -> Assignment:
        return Assignment(
            ip=self.ip,
            container_id=self.key.container_id,
            ifname=self.key.ifname,
            pod_namespace=self.pod_namespace,
            pod_name=self.pod_name,
            since=self.since,
        )


@dataclass(frozen=True, slots=True)
class PoolStats:
    total: int  # IPs in the pool: on the ENIs, minus those confirmed for release
    free: int  # allocatable now
    assigned: int  # held by an attachment (pool IPs only)
    cooldown: int  # released, waiting out the cooldown
    vanished: int = 0  # still assigned, but no longer on any ENI (reported)
    released: int = 0  # confirmed for release to EC2, out of the pool


@dataclass(frozen=True, slots=True)
class EniDiff:
    added_enis: tuple[str, ...] = ()
    removed_enis: tuple[str, ...] = ()
    added_ips: frozenset[IPv4] = frozenset()
    removed_ips: frozenset[IPv4] = frozenset()
    vanished: tuple[Allocation, ...] = ()  # assigned IPs that left every ENI

    @property
    def changed(self) -> bool:
        return bool(
            self.added_enis or self.removed_enis or self.added_ips or self.removed_ips
        )


class ChangeKind(enum.StrEnum):
    ASSIGN = "assign"  # ip now held by key
    RELEASE = "release"  # ip freed by key, cooling down until ``until``
    DROP = "drop"  # ip freed by key but not returned to the pool (vanished/released)
    CONFIRM = "confirm"  # ip confirmed for release to EC2 (release-ok once on disk)
    VANISH = "vanish"  # assigned ip no longer on any ENI


@dataclass(frozen=True, slots=True)
class IpamChange:
    kind: ChangeKind
    ip: IPv4
    allocation: Allocation | None = None
    freed_at: float | None = None


Listener = Callable[[IpamChange], None]
DemandListener = Callable[[int], None]
GrowthCheck = Callable[[], str]  # "" when the control plane can still add IPs, else why not


def _cannot_grow() -> str:
    return "the pool cannot grow"


class _Waiter:
    """One waiting allocation (identity matters: the queue holds these objects)."""

    __slots__ = ("deadline", "grows")

    def __init__(self, deadline: float, grows: bool) -> None:
        self.deadline = deadline
        self.grows = grows  # waits for the pool to grow (counts as demand)


@dataclass(slots=True)
class _Slot:
    eni: EniRecord
    order: tuple[int, int]  # allocation preference: low device index, then low address


@dataclass(slots=True)
class _State:
    slots: dict[IPv4, _Slot] = field(default_factory=dict)  # every IP on the ENIs
    free: set[IPv4] = field(default_factory=set)
    heap: list[tuple[tuple[int, int], IPv4]] = field(default_factory=list)  # lazy
    cooldown: dict[IPv4, float] = field(default_factory=dict)  # ip -> freed at (wall)
    cool_until: dict[IPv4, float] = field(default_factory=dict)  # ip -> reusable at (monotonic)
    cool_heap: list[tuple[float, IPv4]] = field(default_factory=list)  # by cool_until, lazy
    by_key: dict[AttachmentKey, Allocation] = field(default_factory=dict)
    by_ip: dict[IPv4, AttachmentKey] = field(default_factory=dict)
    released: set[IPv4] = field(default_factory=set)  # confirmed, out of the pool
    enis: dict[str, EniRecord] = field(default_factory=dict)
    eni_dicts: list[dict[str, Any]] = field(default_factory=list)


class Ipam:
    def __init__(
        self,
        cooldown_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if cooldown_seconds < 0:
            raise ConfigError("cooldown_seconds must not be negative")
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock  # wall: what is persisted and mirrored
        self._monotonic = monotonic  # what cooldown decisions are made on
        self._s = _State()
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._waiters: deque[_Waiter] = deque()
        self._demand = 0
        self._demand_listeners: list[DemandListener] = []
        self._listeners: list[Listener] = []
        self._generation = 0  # bumped on every change; the checkpoint writer follows it

    # -- observers -----------------------------------------------------------------

    def add_listener(self, callback: Listener) -> None:
        with self._lock:
            self._listeners.append(callback)

    def add_demand_listener(self, callback: DemandListener) -> None:
        """``callback(n)`` whenever the number of allocations waiting for the pool to grow
        changes (under the lock: enqueue, never block)."""
        with self._lock:
            self._demand_listeners.append(callback)

    @property
    def demand(self) -> int:
        with self._lock:
            return self._demand

    def demand_report(self) -> tuple[int, int]:
        """(ADDs waiting for the pool to grow, IPs in the pool), read together."""
        with self._lock:
            s = self._s
            return self._demand, len(s.slots) - len(s.released & set(s.slots))

    def poke(self) -> None:
        """Wake the waiters to look again (e.g. the node's growth outlook changed)."""
        with self._lock:
            self._cond.notify_all()

    @property
    def generation(self) -> int:
        return self._generation

    def _emit(self, change: IpamChange) -> None:
        self._generation += 1
        for cb in self._listeners:
            cb(change)

    # -- pool source -----------------------------------------------------------------

    def set_enis(self, enis: Sequence[EniRecord]) -> EniDiff:
        """Make the pool follow the node's ENIs; returns what changed."""
        with self._lock:
            s = self._s
            new_slots: dict[IPv4, _Slot] = {}
            for eni in sorted(enis, key=lambda e: (e.device_index, e.eni_id)):
                for ip in eni.pod_ips():
                    if ip in new_slots:
                        raise ConfigError(f"{ip} is on both {new_slots[ip].eni.eni_id} and {eni.eni_id}")
                    new_slots[ip] = _Slot(eni, (eni.device_index, int(ip)))
            old_ips, new_ips = set(s.slots), set(new_slots)
            added, removed = new_ips - old_ips, old_ips - new_ips
            vanished: list[Allocation] = []
            for ip in removed:
                # A cooling-down IP keeps cooling down off the ENIs: should EC2 hand
                # it back soon, a peer may still know the pod that had it.
                s.free.discard(ip)
                s.released.discard(ip)  # gone from EC2 as asked: forget it
                key = s.by_ip.get(ip)
                if key is not None:
                    vanished.append(s.by_key[key])
            # Confirmed-released IPs not on any ENI are forgotten too.
            s.released &= new_ips
            for ip, slot in new_slots.items():
                key = s.by_ip.get(ip)
                if key is not None and s.by_key[key].eni != slot.eni:
                    s.by_key[key] = replace(s.by_key[key], eni=slot.eni)
            s.slots = new_slots
            for ip in added:
                if ip not in s.by_ip and ip not in s.released and ip not in s.cooldown:
                    s.free.add(ip)
            self._rebuild_heap()
            diff = EniDiff(
                added_enis=tuple(sorted(set(e.eni_id for e in enis) - set(s.enis))),
                removed_enis=tuple(sorted(set(s.enis) - set(e.eni_id for e in enis))),
                added_ips=frozenset(added),
                removed_ips=frozenset(removed),
                vanished=tuple(sorted(vanished, key=lambda a: int(a.ip))),
            )
            s.enis = {e.eni_id: e for e in enis}
            s.eni_dicts = [_eni_dict(e) for e in enis]  # checkpoints reuse them
            if diff.changed:
                self._generation += 1
            for alloc in diff.vanished:
                self._emit(IpamChange(ChangeKind.VANISH, alloc.ip, alloc))
            self._update_demand()  # new free IPs cover waiters
            self._cond.notify_all()  # new IPs, or a new outlook for the waiters
            return diff

    def enis(self) -> list[EniRecord]:
        with self._lock:
            return list(self._s.enis.values())

    # -- attachments -------------------------------------------------------------------

    def allocate(
        self,
        key: AttachmentKey,
        pod_namespace: str = "",
        pod_name: str = "",
        *,
        wait: float = 0.0,
        can_grow: GrowthCheck = _cannot_grow,
    ) -> Allocation:
        """The IP of ``key``: the one it holds already, else a free one, else one that
        comes within ``wait`` seconds (see the module doc); PoolExhausted otherwise."""
        with self._lock:
            s = self._s
            held = s.by_key.get(key)
            if held is not None:
                return held
            self._expire_cooldown()
            if not self._waiters and s.free:
                return self._take(key, pod_namespace, pod_name)
            now = self._monotonic()
            me = _Waiter(now + max(0.0, wait), False)
            why = self._hopeless(me, len(self._waiters), can_grow)
            if why:
                raise PoolExhausted(why)
            self._waiters.append(me)
            try:
                return self._wait(me, key, pod_namespace, pod_name, can_grow)
            finally:
                if me in self._waiters:
                    self._waiters.remove(me)
                self._cond.notify_all()  # the next in line may take an IP now
                self._update_demand()

    def _wait(self, me: _Waiter, key: AttachmentKey, pod_namespace: str, pod_name: str,
              can_grow: GrowthCheck) -> Allocation:
        s = self._s
        while True:
            self._expire_cooldown()
            position = self._waiters.index(me)
            if position < len(s.free):  # the first ``len(free)`` in line take one each
                self._waiters.remove(me)
                return self._take(key, pod_namespace, pod_name)
            why = self._hopeless(me, position, can_grow)
            if why:
                raise PoolExhausted(why)
            now = self._monotonic()
            timeout = me.deadline - now
            if timeout <= 0:
                raise PoolExhausted(
                    f"no IP came within the ADD's budget ({self._describe()}, "
                    f"{len(self._waiters)} ADDs waiting)"
                )
            nxt = self._next_expiry()
            if nxt is not None:
                timeout = min(timeout, max(0.0, nxt - now) + 0.001)
            self._update_demand()
            self._cond.wait(timeout)

    def _hopeless(self, me: _Waiter, position: int, can_grow: GrowthCheck) -> str:
        """Why no IP can reach the waiter at ``position`` before its deadline ("" if one may)."""
        s = self._s
        coming = len(s.free) + sum(
            1 for ip, until in s.cool_until.items()
            if until <= me.deadline and ip in s.slots and ip not in s.released
        )
        blocker = can_grow()
        me.grows = not blocker
        if position < coming or not blocker:
            return ""
        return f"no free IP on this node ({self._describe()}) and none can come: {blocker}"

    def _describe(self) -> str:
        s = self._s
        cooling = sum(1 for ip in s.cooldown if ip in s.slots)
        text = f"{cooling} cooling down, {len(s.by_ip)} assigned"
        nxt = self._next_expiry()
        if nxt is not None:
            text += f", next free in {max(0.0, nxt - self._monotonic()):.1f}s"
        return text

    def _next_expiry(self) -> float | None:
        s = self._s
        while s.cool_heap and s.cool_until.get(s.cool_heap[0][1]) != s.cool_heap[0][0]:
            heapq.heappop(s.cool_heap)  # stale
        return s.cool_heap[0][0] if s.cool_heap else None

    def _update_demand(self) -> None:
        # The shortfall: the first ``len(free)`` in line take the free IPs as they wake
        # (``_wait``), so they wait for nothing more. Counted from the IPs, not from the
        # waiters leaving the line, a pool that grew for them stops being demand at
        # once, before the mirror can report it again (a provisioning pass for nothing,
        # or their IPs assigned a second time).
        covered = len(self._s.free)
        demand = sum(1 for i, w in enumerate(self._waiters) if w.grows and i >= covered)
        if demand != self._demand:
            self._demand = demand
            for cb in self._demand_listeners:
                cb(demand)

    def _take(self, key: AttachmentKey, pod_namespace: str, pod_name: str) -> Allocation:
        s = self._s
        while True:
            _, ip = heapq.heappop(s.heap)
            if ip in s.free:
                break
        s.free.discard(ip)
        alloc = Allocation(key, ip, s.slots[ip].eni, pod_namespace, pod_name, self._clock())
        s.by_key[key] = alloc
        s.by_ip[ip] = key
        self._emit(IpamChange(ChangeKind.ASSIGN, ip, alloc))
        return alloc

    def outlook(self, wait: float, can_grow: GrowthCheck = _cannot_grow) -> str:
        """"" when an ADD arriving now would get an IP within ``wait`` seconds; else why not."""
        with self._lock:
            self._expire_cooldown()
            if self._s.free:
                return ""
            probe = _Waiter(self._monotonic() + max(0.0, wait), False)
            return self._hopeless(probe, len(self._waiters), can_grow)

    def get(self, key: AttachmentKey) -> Allocation | None:
        with self._lock:
            return self._s.by_key.get(key)

    def allocations(self) -> list[Allocation]:
        with self._lock:
            return list(self._s.by_key.values())

    def release(self, key: AttachmentKey) -> IPv4 | None:
        """Free the IP of ``key`` into the cooldown; None if it held none (idempotent)."""
        with self._lock:
            alloc = self._s.by_key.get(key)
            if alloc is None:
                return None
            self._free(alloc)
            return alloc.ip

    def gc(self, valid: Iterable[AttachmentKey]) -> list[Allocation]:
        """Release every attachment not in ``valid`` (CNI GC); returns what was released."""
        keep = set(valid)
        with self._lock:
            stale = [a for k, a in self._s.by_key.items() if k not in keep]
            for alloc in stale:
                self._free(alloc)
            return stale

    def _free(self, alloc: Allocation) -> None:
        s = self._s
        del s.by_key[alloc.key]
        del s.by_ip[alloc.ip]
        now = self._clock()
        self._cool(alloc.ip, now, self.cooldown_seconds)  # also off the ENIs, in case EC2 hands it back
        if alloc.ip in s.slots:
            self._emit(IpamChange(ChangeKind.RELEASE, alloc.ip, alloc, freed_at=now))
        else:
            self._emit(IpamChange(ChangeKind.DROP, alloc.ip, alloc))

    def _cool(self, ip: IPv4, freed_at: float, remaining: float) -> None:
        s = self._s
        until = self._monotonic() + remaining
        s.cooldown[ip] = freed_at
        s.cool_until[ip] = until
        heapq.heappush(s.cool_heap, (until, ip))

    def _expire_cooldown(self) -> None:
        s = self._s
        now = self._monotonic()
        # Ordered by deadline, not by release: entries restored from a checkpoint
        # carry their own time left, so release order says nothing about expiry.
        while s.cool_heap and s.cool_heap[0][0] <= now:
            until, ip = heapq.heappop(s.cool_heap)
            if s.cool_until.get(ip) != until:
                continue  # a stale heap entry
            del s.cooldown[ip]
            del s.cool_until[ip]
            if ip in s.slots and ip not in s.released:
                s.free.add(ip)
                heapq.heappush(s.heap, (s.slots[ip].order, ip))

    def _rebuild_heap(self) -> None:
        s = self._s
        s.heap = [(s.slots[ip].order, ip) for ip in s.free]
        heapq.heapify(s.heap)

    # -- control plane requests ----------------------------------------------------------

    def confirm_release(self, ips: Iterable[IPv4]) -> set[IPv4]:
        """Give up the requested IPs that are unused; returns those confirmed.

        Assigned and cooling-down IPs are refused (a peer may still know them), and so
        are IPs not on the ENIs the pool follows: the agent may not have seen them
        yet, and confirming one could let it join the pool after EC2 took it back.
        The control plane asks again on its next pass.
        """
        confirmed: set[IPv4] = set()
        with self._lock:
            s = self._s
            self._expire_cooldown()
            for ip in ips:
                if ip not in s.slots or ip in s.by_ip or ip in s.cooldown:
                    continue
                confirmed.add(ip)
                if ip in s.released:
                    continue
                s.free.discard(ip)  # the heap entry goes stale and is skipped
                s.released.add(ip)
                self._emit(IpamChange(ChangeKind.CONFIRM, ip))
            return confirmed

    def unassigned(self) -> set[IPv4]:
        """IPs the pool knows and no attachment holds (free, cooling down, released):
        no pod of this node may be using them, so their pod rules are leftovers."""
        with self._lock:
            s = self._s
            return (set(s.slots) | set(s.cooldown)) - set(s.by_ip)

    def released(self) -> set[IPv4]:
        with self._lock:
            return set(self._s.released)

    # -- accounting ----------------------------------------------------------------------

    def stats(self) -> PoolStats:
        with self._lock:
            s = self._s
            self._expire_cooldown()
            vanished = sum(1 for ip in s.by_ip if ip not in s.slots)
            assigned = len(s.by_ip) - vanished
            cooling = sum(1 for ip in s.cooldown if ip in s.slots)
            return PoolStats(
                total=len(s.free) + assigned + cooling,
                free=len(s.free),
                assigned=assigned,
                cooldown=cooling,
                vanished=vanished,
                released=len(s.released),
            )

    def cooldown(self) -> dict[IPv4, float]:
        """IP -> unix time it was freed (pool IPs only), for the Redis mirror."""
        with self._lock:
            self._expire_cooldown()
            return {ip: t for ip, t in self._s.cooldown.items() if ip in self._s.slots}

    # -- checkpoint -----------------------------------------------------------------------

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        """(generation, checkpoint) taken atomically, for the group-committing writer."""
        with self._lock:
            return self._generation, self.to_checkpoint()

    def to_checkpoint(self) -> dict[str, Any]:
        with self._lock:
            s = self._s
            # Written on every ADD/DEL: keep it cheap. An allocation names its ENI; the
            # whole record only travels with IPs that left the ENIs (vanished).
            allocations = []
            for a in s.by_key.values():
                entry: dict[str, Any] = {
                    "container_id": a.key.container_id,
                    "ifname": a.key.ifname,
                    "ip": str(a.ip),
                    "eni_id": a.eni.eni_id,
                    "pod_namespace": a.pod_namespace,
                    "pod_name": a.pod_name,
                    "since": a.since,
                }
                if a.ip not in s.slots:
                    entry["eni"] = _eni_dict(a.eni)
                allocations.append(entry)
            return {
                "version": CHECKPOINT_VERSION,
                "cooldown_seconds": self.cooldown_seconds,
                "enis": list(s.eni_dicts),
                "allocations": allocations,
                "cooldown": [[str(ip), t] for ip, t in s.cooldown.items()],
                "released": sorted(str(ip) for ip in s.released),
            }

    @classmethod
    def from_checkpoint(
        cls,
        data: Mapping[str, Any],
        cooldown_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> Ipam:
        """Rebuild the pool as it was; CheckpointError on one that does not parse."""
        try:
            if data.get("version") != CHECKPOINT_VERSION:
                raise CheckpointError(f"unsupported IPAM checkpoint version {data.get('version')!r}")
            ipam = cls(
                float(data["cooldown_seconds"]) if cooldown_seconds is None else cooldown_seconds,
                clock,
                monotonic,
            )
            s = ipam._s
            ipam.set_enis([_eni_from(d) for d in data["enis"]])
            s.released = {ipaddress.IPv4Address(i) for i in data["released"]} & set(s.slots)
            s.free -= s.released
            for d in data["allocations"]:
                key = AttachmentKey(str(d["container_id"]), str(d["ifname"]))
                ip = ipaddress.IPv4Address(d["ip"])
                if key in s.by_key or ip in s.by_ip:
                    raise CheckpointError(f"checkpoint assigns {ip} or {key} twice")
                eni = s.slots[ip].eni if ip in s.slots else _eni_from(d["eni"])
                s.by_key[key] = Allocation(
                    key, ip, eni, str(d["pod_namespace"]), str(d["pod_name"]), float(d["since"])
                )
                s.by_ip[ip] = key
                s.free.discard(ip)
            now = clock()
            full = ipam.cooldown_seconds
            for raw_ip, raw_freed_at in data["cooldown"]:
                ip = ipaddress.IPv4Address(raw_ip)
                if ip in s.by_ip or ip in s.released:
                    raise CheckpointError(f"checkpoint has {ip} both cooling down and held")
                s.free.discard(ip)
                # A freed time ahead of the wall clock (it stepped back) counts as "just
                # freed": a full cooldown, never more.
                freed_at = float(raw_freed_at)
                if not math.isfinite(freed_at):
                    raise CheckpointError(f"checkpoint has {ip} freed at {raw_freed_at!r}")
                freed_at = min(freed_at, now)
                ipam._cool(ip, freed_at, full - min(now - freed_at, full))
            ipam._rebuild_heap()
            return ipam
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise CheckpointError(f"malformed IPAM checkpoint: {e!r}") from e


def _eni_dict(eni: EniRecord) -> dict[str, Any]:
    d: dict[str, Any] = json.loads(eni.to_json())
    return d


def _eni_from(d: Mapping[str, Any]) -> EniRecord:
    return EniRecord.from_json(json.dumps(d))
