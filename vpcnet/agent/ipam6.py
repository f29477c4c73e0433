"""The node's IPv6 pool, built from the /80 prefixes of its ENIs (pure: no I/O).

Each /80 (``EniRecord.ipv6_prefixes``) holds 2**48 pod addresses. The prefix's own
address (``::0`` of the /80, the subnet-router anycast address of that range) is never
handed out.

No cooldown set: each prefix has a *cursor*, the offset of the next address to hand
out, which only moves forward (wrapping to 1 after 2**48 - 1, skipping held addresses).
A freed address is therefore handed out again only after every other address of its
/80 was, 2**48 - 2 allocations later: no peer's neighbour or conntrack entry of the old
pod can outlive that. The cursors are checkpointed, so a restart does not reset them.
The IPv4 pool needs a timed cooldown because its few addresses are reused at once.

The key is the CNI attachment key (container id, ifname): allocating again for the same
key returns the same address. A /80 the control plane asks back (its CIDR string in
``release-req``) is confirmed only when no pod holds an address of it; from then on
nothing is allocated from it, until it leaves the ENIs too. A prefix that vanishes from
the ENIs while pods hold addresses of it keeps those assignments (reported in the
``Ipv6Diff``), never silently dropped.

An allocation may wait (``allocate(..., wait=seconds)``) while the node has no usable
/80 yet and ``can_grow`` returns "" (the control plane is delegating one): the waiting
allocations are the node's IPv6 *demand*. One for which no /80 can come fails at once,
saying why (``PoolExhausted``).

Thread-safe: one re-entrant lock guards the state; listeners run under it, in order,
and must be quick (enqueue, never block).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from vpcnet.agent.ipam import (
    AttachmentKey,
    ChangeKind,
    DemandListener,
    GrowthCheck,
    _eni_dict,
    _eni_from,
)
from vpcnet.domain import IPV6_PREFIX_LEN, Assignment, EniRecord, IPv6, IPv6Net
from vpcnet.errors import CheckpointError, ConfigError, PoolExhausted

CHECKPOINT6_VERSION = 1
_SPAN = 1 << (128 - IPV6_PREFIX_LEN)  # addresses per /80


def _no_prefix_coming() -> str:
    return "no IPv6 prefix can come"


@dataclass(frozen=True, slots=True)
class Allocation6:
    key: AttachmentKey
    ip: IPv6
    prefix: IPv6Net
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
class Ipv6Diff:
    added: frozenset[IPv6Net] = frozenset()
    removed: frozenset[IPv6Net] = frozenset()
    vanished: tuple[Allocation6, ...] = ()  # assigned addresses whose /80 left every ENI


@dataclass(frozen=True, slots=True)
class Ipv6Change:
    kind: ChangeKind  # ASSIGN, DROP (freed: no cooldown to mirror), CONFIRM, VANISH
    ip: IPv6 | None
    allocation: Allocation6 | None = None
    prefix: IPv6Net | None = None  # CONFIRM: the /80 given up


Listener6 = Callable[[Ipv6Change], None]


@dataclass(slots=True)
class _State:
    prefixes: dict[IPv6Net, EniRecord] = field(default_factory=dict)  # on the ENIs
    cursor: dict[IPv6Net, int] = field(default_factory=dict)  # next offset to try
    by_key: dict[AttachmentKey, Allocation6] = field(default_factory=dict)
    by_ip: dict[IPv6, AttachmentKey] = field(default_factory=dict)
    released: set[IPv6Net] = field(default_factory=set)  # confirmed, no allocation from them


def prefix_of(ip: IPv6) -> IPv6Net:
    return ipaddress.IPv6Network((int(ip) >> (128 - IPV6_PREFIX_LEN) << (128 - IPV6_PREFIX_LEN),
                                  IPV6_PREFIX_LEN))


class Ipam6:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._s = _State()
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._waiting = 0  # allocations waiting for a /80 that is coming (demand)
        self._listeners: list[Listener6] = []
        self._demand_listeners: list[DemandListener] = []
        self._generation = 0

    # -- observers ---------------------------------------------------------------------

    def add_listener(self, callback: Listener6) -> None:
        with self._lock:
            self._listeners.append(callback)

    def add_demand_listener(self, callback: DemandListener) -> None:
        with self._lock:
            self._demand_listeners.append(callback)

    @property
    def demand(self) -> int:
        with self._lock:
            return self._waiting

    @property
    def generation(self) -> int:
        return self._generation

    def poke(self) -> None:
        with self._lock:
            self._cond.notify_all()

    def _emit(self, change: Ipv6Change) -> None:
        self._generation += 1
        for cb in self._listeners:
            cb(change)

    def _set_waiting(self, n: int) -> None:
        self._waiting = n
        for cb in self._demand_listeners:
            cb(n)

    # -- pool source ---------------------------------------------------------------------

    def set_enis(self, enis: Sequence[EniRecord]) -> Ipv6Diff:
        """Follow the /80s of the node's ENIs; returns what changed."""
        with self._lock:
            s = self._s
            new: dict[IPv6Net, EniRecord] = {}
            for eni in sorted(enis, key=lambda e: (e.device_index, e.eni_id)):
                for prefix in eni.ipv6_prefixes:
                    if prefix.prefixlen != IPV6_PREFIX_LEN:
                        raise ConfigError(f"{prefix} of {eni.eni_id} is not a /{IPV6_PREFIX_LEN}")
                    if prefix in new:
                        raise ConfigError(f"{prefix} is on both {new[prefix].eni_id} and {eni.eni_id}")
                    new[prefix] = eni
            added = frozenset(set(new) - set(s.prefixes))
            removed = frozenset(set(s.prefixes) - set(new))
            s.released &= set(new)  # gone from EC2 as asked: forget it
            vanished = sorted(
                (a for a in s.by_key.values() if a.prefix in removed), key=lambda a: int(a.ip)
            )
            for prefix, eni in new.items():  # re-point allocations at the newer record
                for key in [k for k, a in s.by_key.items() if a.prefix == prefix and a.eni != eni]:
                    s.by_key[key] = replace(s.by_key[key], eni=eni)
            s.prefixes = new
            for prefix in added:
                s.cursor.setdefault(prefix, 1)
            if added or removed:
                self._generation += 1
            for alloc in vanished:
                self._emit(Ipv6Change(ChangeKind.VANISH, alloc.ip, alloc, alloc.prefix))
            self._cond.notify_all()  # a /80 arrived, or the outlook changed
            return Ipv6Diff(added, removed, tuple(vanished))

    def prefixes(self) -> dict[IPv6Net, EniRecord]:
        with self._lock:
            return dict(self._s.prefixes)

    def usable(self) -> list[IPv6Net]:
        """The /80s allocations come from: on the ENIs, not given back; primary ENI first."""
        with self._lock:
            s = self._s
            return sorted((p for p in s.prefixes if p not in s.released),
                          key=lambda p: (s.prefixes[p].device_index, int(p.network_address)))

    # -- attachments -------------------------------------------------------------------

    def allocate(
        self,
        key: AttachmentKey,
        pod_namespace: str = "",
        pod_name: str = "",
        *,
        wait: float = 0.0,
        can_grow: GrowthCheck = _no_prefix_coming,
    ) -> Allocation6:
        """The IPv6 address of ``key``: the one it holds, else the next of a usable /80,
        else one of a /80 that comes within ``wait`` seconds; PoolExhausted otherwise."""
        with self._lock:
            held = self._s.by_key.get(key)
            if held is not None:
                return held
            deadline = time.monotonic() + max(0.0, wait)
            counted = False
            try:
                while True:
                    usable = self.usable()
                    if usable:
                        return self._take(key, usable[0], pod_namespace, pod_name)
                    blocker = can_grow()
                    if blocker:
                        raise PoolExhausted(f"no IPv6 prefix on this node and none can come: {blocker}")
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise PoolExhausted("no IPv6 prefix came within the ADD's budget")
                    if not counted:
                        counted = True
                        self._set_waiting(self._waiting + 1)
                    self._cond.wait(left)
            finally:
                if counted:
                    self._set_waiting(self._waiting - 1)

    def _take(self, key: AttachmentKey, prefix: IPv6Net, pod_namespace: str, pod_name: str) -> Allocation6:
        s = self._s
        base = int(prefix.network_address)
        offset = s.cursor.get(prefix, 1)
        # Held addresses are skipped; a /80 cannot fill up (2**48 addresses, one pod each).
        while IPv6(base + offset) in s.by_ip:
            offset = offset + 1 if offset + 1 < _SPAN else 1
        ip = IPv6(base + offset)
        s.cursor[prefix] = offset + 1 if offset + 1 < _SPAN else 1  # never ::0
        alloc = Allocation6(key, ip, prefix, s.prefixes[prefix], pod_namespace, pod_name, self._clock())
        s.by_key[key] = alloc
        s.by_ip[ip] = key
        self._emit(Ipv6Change(ChangeKind.ASSIGN, ip, alloc, prefix))
        return alloc

    def outlook(self, can_grow: GrowthCheck = _no_prefix_coming) -> str:
        """"" when an ADD arriving now could get an IPv6 address (now or once a /80
        that is coming arrives); else why not."""
        with self._lock:
            if self.usable():
                return ""
            blocker = can_grow()
            return f"no IPv6 prefix on this node and none can come: {blocker}" if blocker else ""

    def get(self, key: AttachmentKey) -> Allocation6 | None:
        with self._lock:
            return self._s.by_key.get(key)

    def allocations(self) -> list[Allocation6]:
        with self._lock:
            return list(self._s.by_key.values())

    def release(self, key: AttachmentKey) -> IPv6 | None:
        """Free the address of ``key``; None if it held none (idempotent)."""
        with self._lock:
            s = self._s
            alloc = s.by_key.pop(key, None)
            if alloc is None:
                return None
            del s.by_ip[alloc.ip]
            self._emit(Ipv6Change(ChangeKind.DROP, alloc.ip, alloc, alloc.prefix))
            self._cond.notify_all()  # a prefix asked back may be confirmable now
            return alloc.ip

    def gc(self, valid: Iterable[AttachmentKey]) -> list[Allocation6]:
        keep = set(valid)
        with self._lock:
            stale = [a for k, a in self._s.by_key.items() if k not in keep]
            for alloc in stale:
                self.release(alloc.key)
            return stale

    # -- control plane requests ----------------------------------------------------------

    def confirm_release(self, prefixes: Iterable[IPv6Net]) -> set[IPv6Net]:
        """Give up the requested /80s no pod holds an address of; returns those confirmed.

        Prefixes not on the ENIs the pool follows are refused (the agent may not have
        seen them yet); the control plane asks again on its next pass.
        """
        confirmed: set[IPv6Net] = set()
        with self._lock:
            s = self._s
            held = {a.prefix for a in s.by_key.values()}
            for prefix in prefixes:
                if prefix not in s.prefixes or prefix in held:
                    continue
                confirmed.add(prefix)
                if prefix not in s.released:
                    s.released.add(prefix)
                    self._emit(Ipv6Change(ChangeKind.CONFIRM, None, prefix=prefix))
            return confirmed

    def released(self) -> set[IPv6Net]:
        with self._lock:
            return set(self._s.released)

    def unassigned_prefixes(self) -> set[IPv6Net]:
        with self._lock:
            s = self._s
            return set(s.prefixes) - {a.prefix for a in s.by_key.values()}

    # -- checkpoint -----------------------------------------------------------------------

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        """(generation, checkpoint section) taken atomically."""
        with self._lock:
            return self._generation, self.to_checkpoint()

    def to_checkpoint(self) -> dict[str, Any]:
        with self._lock:
            s = self._s
            allocations = []
            for a in s.by_key.values():
                entry: dict[str, Any] = {
                    "container_id": a.key.container_id,
                    "ifname": a.key.ifname,
                    "ip": str(a.ip),
                    "pod_namespace": a.pod_namespace,
                    "pod_name": a.pod_name,
                    "since": a.since,
                    "eni": _eni_dict(a.eni),
                }
                allocations.append(entry)
            return {
                "version": CHECKPOINT6_VERSION,
                # The ENIs themselves travel in the IPv4 section; the /80s are re-read
                # from them, so only the cursors and what is held is kept here.
                "cursors": {str(p): c for p, c in s.cursor.items()},
                "allocations": allocations,
                "released": sorted(str(p) for p in s.released),
            }

    @classmethod
    def from_checkpoint(
        cls,
        data: Mapping[str, Any] | None,
        enis: Sequence[EniRecord],
        clock: Callable[[], float] = time.time,
    ) -> Ipam6:
        """Rebuild the pool; ``data`` None (a checkpoint older than IPv6) is an empty pool."""
        ipam = cls(clock)
        try:
            ipam.set_enis(enis)
            if data is None:
                return ipam
            if data.get("version") != CHECKPOINT6_VERSION:
                raise CheckpointError(f"unsupported IPv6 checkpoint version {data.get('version')!r}")
            s = ipam._s
            for raw, cursor in dict(data["cursors"]).items():
                offset = int(cursor)
                if not 1 <= offset < _SPAN:
                    raise CheckpointError(f"checkpoint has cursor {cursor!r} for {raw}")
                s.cursor[ipaddress.IPv6Network(raw)] = offset
            s.released = {ipaddress.IPv6Network(p) for p in data["released"]} & set(s.prefixes)
            for d in data["allocations"]:
                key = AttachmentKey(str(d["container_id"]), str(d["ifname"]))
                ip = ipaddress.IPv6Address(d["ip"])
                if key in s.by_key or ip in s.by_ip:
                    raise CheckpointError(f"checkpoint assigns {ip} or {key} twice")
                prefix = prefix_of(ip)
                eni = s.prefixes.get(prefix) or _eni_from(d["eni"])
                s.by_key[key] = Allocation6(key, ip, prefix, eni, str(d["pod_namespace"]),
                                            str(d["pod_name"]), float(d["since"]))
                s.by_ip[ip] = key
            return ipam
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise CheckpointError(f"malformed IPv6 checkpoint: {e!r}") from e
