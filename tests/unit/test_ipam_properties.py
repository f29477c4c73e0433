"""Properties of the pool under any sequence of operations (hypothesis state machine):
never two keys on one IP, exact accounting, the cooldown respected, released IPs out,
and a checkpoint that restores the same pool."""

from __future__ import annotations

import ipaddress

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from vpcnet.agent.ipam import AttachmentKey, Ipam
from vpcnet.domain import EniRecord
from vpcnet.errors import PoolExhausted

IP = ipaddress.IPv4Address
COOLDOWN = 30.0
# A universe of 12 IPs over 3 ENIs; each step picks which of them the ENIs carry.
UNIVERSE = [(i // 4, IP(f"10.0.{i // 4}.{10 + i % 4}")) for i in range(12)]
KEYS = [AttachmentKey(f"c{n}", ifname) for n in range(8) for ifname in ("eth0", "net1")]


def enis_for(present: frozenset[int]) -> list[EniRecord]:
    out = []
    for dev in range(3):
        ips = tuple(ip for i, (d, ip) in enumerate(UNIVERSE) if d == dev and i in present)
        out.append(
            EniRecord(
                eni_id=f"eni-{dev}",
                mac=f"02:00:00:00:00:0{dev}",
                device_index=dev,
                subnet_id="s",
                subnet_cidr=ipaddress.IPv4Network("10.0.0.0/16"),
                primary_ip=IP(f"10.0.{dev}.1"),
                ips=ips,
                is_primary=dev == 0,
            )
        )
    return out


class PoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.ipam = Ipam(COOLDOWN, clock=lambda: self.now, monotonic=lambda: self.now)
        self.present = frozenset(range(12))
        self.ipam.set_enis(enis_for(self.present))
        self.freed_at: dict[IPv4Address, float] = {}  # model: when each IP was last freed
        self.released: set[IPv4Address] = set()
        self.owner: dict[AttachmentKey, IPv4Address] = {}

    def on_enis(self, ip: IPv4Address) -> bool:
        return any(u == ip and i in self.present for i, (_, u) in enumerate(UNIVERSE))

    @rule(k=st.sampled_from(KEYS))
    def allocate(self, k: AttachmentKey) -> None:
        try:
            alloc = self.ipam.allocate(k)
        except PoolExhausted:
            # Only when nothing is allocatable in the model either.
            held = set(self.owner.values())
            usable = [
                ip for i, (_, ip) in enumerate(UNIVERSE)
                if i in self.present and ip not in held and ip not in self.released
                and self.now - self.freed_at.get(ip, -1e9) >= COOLDOWN
            ]
            assert k not in self.owner and not usable
            return
        if k in self.owner:
            assert alloc.ip == self.owner[k]  # same key, same IP
            return
        assert alloc.ip not in self.owner.values()
        assert self.on_enis(alloc.ip) and alloc.ip not in self.released
        assert self.now - self.freed_at.get(alloc.ip, -1e9) >= COOLDOWN  # cooldown respected
        self.owner[k] = alloc.ip

    @rule(k=st.sampled_from(KEYS))
    def release(self, k: AttachmentKey) -> None:
        ip = self.ipam.release(k)
        assert ip == self.owner.pop(k, None)
        if ip is not None:
            self.freed_at[ip] = self.now

    @rule(keep=st.sets(st.sampled_from(KEYS)))
    def gc(self, keep: set[AttachmentKey]) -> None:
        gone = {a.key for a in self.ipam.gc(keep)}
        assert gone == set(self.owner) - keep
        for k in gone:
            self.freed_at[self.owner.pop(k)] = self.now

    @rule(ips=st.sets(st.sampled_from([ip for _, ip in UNIVERSE]), max_size=4))
    def confirm_release(self, ips: set[IPv4Address]) -> None:
        confirmed = self.ipam.confirm_release(ips)
        for ip in confirmed:
            assert ip not in self.owner.values() and self.on_enis(ip)
            assert self.now - self.freed_at.get(ip, -1e9) >= COOLDOWN
        self.released |= confirmed

    @rule(present=st.frozensets(st.integers(0, 11)))
    def set_enis(self, present: frozenset[int]) -> None:
        diff = self.ipam.set_enis(enis_for(present))
        self.present = present
        assert {a.ip for a in diff.vanished} <= set(self.owner.values())
        self.released = {ip for ip in self.released if self.on_enis(ip)}

    @rule(dt=st.floats(0, 40))
    def tick(self, dt: float) -> None:
        self.now += dt

    @rule()
    def restore_from_checkpoint(self) -> None:
        data = self.ipam.to_checkpoint()
        again = Ipam.from_checkpoint(data, clock=lambda: self.now, monotonic=lambda: self.now)
        assert again.to_checkpoint() == data
        assert again.stats() == self.ipam.stats()
        self.ipam = again

    @invariant()
    def accounting_is_exact(self) -> None:
        stats = self.ipam.stats()
        allocs = self.ipam.allocations()
        assert len({a.ip for a in allocs}) == len(allocs)  # never two keys on one IP
        assert {a.key: a.ip for a in allocs} == self.owner
        on_enis = sum(1 for i in self.present)
        assert stats.total == stats.free + stats.assigned + stats.cooldown
        assert stats.total + stats.released == on_enis
        assert stats.assigned + stats.vanished == len(self.owner)
        assert set(self.ipam.released()) == self.released


IPv4Address = ipaddress.IPv4Address
PoolMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=30, deadline=None)
test_pool_properties = PoolMachine.TestCase
