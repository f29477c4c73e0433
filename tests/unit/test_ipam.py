"""The node's IP pool: allocation, cooldown, release requests, vanishing IPs, checkpoint."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from vpcnet.agent.ipam import AttachmentKey, ChangeKind, Ipam, IpamChange
from vpcnet.domain import EniRecord
from vpcnet.errors import CheckpointError, ConfigError, PoolExhausted

IP = ipaddress.IPv4Address


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def eni(index: int, ips: list[str], prefixes: tuple[str, ...] = ()) -> EniRecord:
    return EniRecord(
        eni_id=f"eni-{index}",
        mac=f"02:00:00:00:00:{index:02x}",
        device_index=index,
        subnet_id="subnet-1",
        subnet_cidr=ipaddress.IPv4Network("10.0.0.0/16"),
        primary_ip=IP(f"10.0.{index}.10"),
        ips=tuple(IP(i) for i in ips),
        prefixes=tuple(ipaddress.IPv4Network(p) for p in prefixes),
        is_primary=index == 0,
    )


def key(n: int) -> AttachmentKey:
    return AttachmentKey(f"c{n}", "eth0")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ipam(clock: Clock) -> Ipam:
    pool = Ipam(cooldown_seconds=30.0, clock=clock, monotonic=clock)
    pool.set_enis([eni(1, ["10.0.1.2", "10.0.1.1"]), eni(0, ["10.0.0.5"])])
    return pool


def test_same_key_gets_the_same_ip_and_keys_never_share(ipam: Ipam) -> None:
    a = ipam.allocate(key(1), "default", "web-0")
    assert ipam.allocate(key(1)) == a
    # Preference: lowest device index, then lowest address.
    assert a.ip == IP("10.0.0.5") and a.eni.eni_id == "eni-0" and a.pod_name == "web-0"
    b, c = ipam.allocate(key(2)), ipam.allocate(key(3))
    assert [b.ip, c.ip] == [IP("10.0.1.1"), IP("10.0.1.2")]
    with pytest.raises(PoolExhausted):
        ipam.allocate(key(4))
    assert ipam.stats().total == 3 and ipam.stats().assigned == 3 and ipam.stats().free == 0


def test_released_ip_cools_down_before_reuse(ipam: Ipam, clock: Clock) -> None:
    ips = {ipam.allocate(key(n)).ip for n in range(3)}
    assert ipam.release(key(0)) == IP("10.0.0.5")
    assert ipam.release(key(0)) is None  # idempotent
    assert ipam.stats().cooldown == 1 and ipam.cooldown() == {IP("10.0.0.5"): 1000.0}
    clock.now += 29.9
    with pytest.raises(PoolExhausted):
        ipam.allocate(key(9))
    clock.now += 0.1
    assert ipam.allocate(key(9)).ip == IP("10.0.0.5")
    assert ipam.stats().cooldown == 0 and ips == {a.ip for a in ipam.allocations()}


def test_gc_releases_keys_not_valid(ipam: Ipam) -> None:
    for n in range(3):
        ipam.allocate(key(n))
    stale = ipam.gc({key(1)})
    assert sorted(a.key.container_id for a in stale) == ["c0", "c2"]
    assert [a.key for a in ipam.allocations()] == [key(1)]
    assert ipam.stats().cooldown == 2


def test_confirm_release_only_gives_up_unused_ips(ipam: Ipam, clock: Clock) -> None:
    used = ipam.allocate(key(1)).ip  # 10.0.0.5
    ipam.allocate(key(2))
    ipam.release(key(2))  # 10.0.1.1 cooling down
    confirmed = ipam.confirm_release({used, IP("10.0.1.1"), IP("10.0.1.2"), IP("10.9.9.9")})
    assert confirmed == {IP("10.0.1.2")}  # not unknown ones: maybe not seen yet
    assert ipam.confirm_release({IP("10.0.1.2")}) == {IP("10.0.1.2")}  # idempotent
    assert ipam.stats().total == 2 and ipam.stats().released == 1
    clock.now += 31
    ipam.set_enis(ipam.enis())  # still on the ENI in Redis: must not come back
    assert ipam.allocate(key(3)).ip == IP("10.0.1.1")
    with pytest.raises(PoolExhausted):
        ipam.allocate(key(4))
    # Once EC2 took it back (gone from the ENI) and later re-added, it is usable again.
    ipam.set_enis([eni(1, ["10.0.1.1"]), eni(0, ["10.0.0.5"])])
    assert ipam.released() == set()
    ipam.set_enis([eni(1, ["10.0.1.1", "10.0.1.2"]), eni(0, ["10.0.0.5"])])
    assert ipam.allocate(key(4)).ip == IP("10.0.1.2")


def test_vanished_ips_are_reported_and_kept(ipam: Ipam) -> None:
    events: list[IpamChange] = []
    ipam.add_listener(events.append)
    held = ipam.allocate(key(1))  # 10.0.0.5 on eni-0
    diff = ipam.set_enis([eni(1, ["10.0.1.2", "10.0.1.1"])])
    assert diff.removed_enis == ("eni-0",) and diff.removed_ips == {held.ip}
    assert [a.key for a in diff.vanished] == [key(1)]
    assert ipam.get(key(1)) == held  # the pod still uses it
    assert ipam.stats().vanished == 1 and ipam.stats().total == 2
    assert ipam.release(key(1)) == held.ip
    assert [e.kind for e in events] == [ChangeKind.ASSIGN, ChangeKind.VANISH, ChangeKind.DROP]
    assert ipam.stats().cooldown == 0  # not on any ENI: never back in the pool


def test_prefix_addresses_are_pool_ips(clock: Clock) -> None:
    pool = Ipam(clock=clock, monotonic=clock)
    pool.set_enis([eni(0, [], prefixes=("10.0.8.16/28",))])
    got = {pool.allocate(key(n)).ip for n in range(16)}
    assert got == set(ipaddress.IPv4Network("10.0.8.16/28"))
    with pytest.raises(PoolExhausted):
        pool.allocate(key(99))


def test_an_ip_on_two_enis_is_refused(ipam: Ipam) -> None:
    with pytest.raises(ConfigError):
        ipam.set_enis([eni(0, ["10.0.0.5"]), eni(1, ["10.0.0.5"])])
    assert ipam.stats().total == 3  # unchanged


def test_ip_moving_to_another_eni_updates_the_allocation(ipam: Ipam) -> None:
    ipam.allocate(key(1))  # 10.0.0.5 on eni-0
    ipam.set_enis([eni(0, []), eni(1, ["10.0.0.5", "10.0.1.1"])])
    alloc = ipam.get(key(1))
    assert alloc is not None and alloc.eni.eni_id == "eni-1"


def test_listener_sees_every_change_in_order(ipam: Ipam) -> None:
    events: list[IpamChange] = []
    ipam.add_listener(events.append)
    ipam.allocate(key(1))
    ipam.release(key(1))
    ipam.confirm_release({IP("10.0.1.2")})
    assert [(e.kind, str(e.ip)) for e in events] == [
        (ChangeKind.ASSIGN, "10.0.0.5"),
        (ChangeKind.RELEASE, "10.0.0.5"),
        (ChangeKind.CONFIRM, "10.0.1.2"),
    ]
    assert events[1].freed_at == 1000.0 and events[0].allocation is not None


def test_checkpoint_round_trip(ipam: Ipam, clock: Clock) -> None:
    ipam.allocate(key(1), "ns", "pod")
    ipam.allocate(key(2))
    ipam.release(key(2))
    ipam.confirm_release({IP("10.0.1.2")})
    again = Ipam.from_checkpoint(ipam.to_checkpoint(), clock=clock, monotonic=clock)
    assert again.to_checkpoint() == ipam.to_checkpoint()
    assert again.stats() == ipam.stats()
    assert again.allocate(key(1)) == ipam.get(key(1))
    with pytest.raises(PoolExhausted):  # 10.0.1.1 still cools down, 10.0.1.2 released
        again.allocate(key(3))


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.update(version=99),
        lambda d: d.pop("enis"),
        lambda d: d["allocations"].append(dict(d["allocations"][0])),
        lambda d: d["allocations"][0].update(ip="not-an-ip"),
        lambda d: d.update(cooldown=[["10.0.0.1"]]),
    ],
)
def test_corrupt_checkpoint_is_an_error(ipam: Ipam, damage: object) -> None:
    ipam.allocate(key(1))
    data = ipam.to_checkpoint()
    damage(data)  # type: ignore[operator]
    with pytest.raises(CheckpointError):
        Ipam.from_checkpoint(data)


def test_negative_cooldown_is_refused() -> None:
    with pytest.raises(ConfigError):
        Ipam(cooldown_seconds=-1)


def test_allocation_carries_the_eni_for_routing(ipam: Ipam) -> None:
    for n in range(3):
        ipam.allocate(key(n))
    by_ip = {a.ip: a.eni.device_index for a in ipam.allocations()}
    assert by_ip == {IP("10.0.0.5"): 0, IP("10.0.1.1"): 1, IP("10.0.1.2"): 1}
    assert replace(ipam.allocations()[0]).to_assignment().container_id == "c0"
