"""The node's IPv6 pool: allocation from /80s, never ::0, idempotence, release, the cursor,
release-req/release-ok of a /80, vanished prefixes, waiting for a /80, checkpoint."""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import replace

import pytest

from vpcnet.agent.ipam import AttachmentKey, ChangeKind, Ipam
from vpcnet.agent.ipam6 import Ipam6, Ipv6Change
from vpcnet.agent.pools import NodePools
from vpcnet.domain import EniRecord
from vpcnet.errors import CheckpointError, ConfigError, PoolExhausted

IP = ipaddress.IPv4Address
IP6 = ipaddress.IPv6Address
NET6 = ipaddress.IPv6Network
P1 = "2001:db8:1:2:3::/80"
P2 = "2001:db8:1:2:4::/80"


def eni(index: int, ips: tuple[str, ...] = (), prefixes6: tuple[str, ...] = ()) -> EniRecord:
    return EniRecord(
        eni_id=f"eni-{index}",
        mac=f"02:00:00:00:00:{index:02x}",
        device_index=index,
        subnet_id="subnet-1",
        subnet_cidr=ipaddress.IPv4Network("10.0.0.0/16"),
        primary_ip=IP(f"10.0.{index}.10"),
        ips=tuple(IP(i) for i in ips),
        is_primary=index == 0,
        ipv6_prefixes=tuple(NET6(p) for p in prefixes6),
        subnet_ipv6_cidr=NET6("2001:db8:1:2::/64"),
    )


def key(n: int) -> AttachmentKey:
    return AttachmentKey(f"c{n}", "eth0")


def pool(*prefixes: str) -> Ipam6:
    p = Ipam6(clock=lambda: 1000.0)
    p.set_enis([eni(0, prefixes6=prefixes)])
    return p


def test_allocates_from_the_80_never_its_first_address() -> None:
    p = pool(P1)
    a = p.allocate(key(1))
    assert a.ip in NET6(P1) and a.ip != NET6(P1).network_address
    assert a.prefix == NET6(P1) and a.eni.eni_id == "eni-0"
    assert a.to_assignment().ip == a.ip and a.to_assignment().container_id == "c1"


def test_same_key_gets_the_same_address_and_keys_get_distinct_ones() -> None:
    p = pool(P1)
    first = p.allocate(key(1))
    assert p.allocate(key(1)) == first
    others = {p.allocate(key(n)).ip for n in range(2, 50)}
    assert len(others) == 48 and first.ip not in others


def test_release_frees_and_a_freed_address_is_not_handed_out_soon() -> None:
    p = pool(P1)
    a = p.allocate(key(1))
    assert p.release(key(1)) == a.ip
    assert p.release(key(1)) is None  # idempotent
    assert p.get(key(1)) is None
    later = {p.allocate(key(n)).ip for n in range(2, 200)}
    assert a.ip not in later  # the cursor moved on


def test_the_cursor_wraps_past_the_end_to_1_skipping_held_addresses() -> None:
    p = pool(P1)
    held = p.allocate(key(1))  # offset 1
    base = int(NET6(P1).network_address)
    p._s.cursor[NET6(P1)] = (1 << 48) - 1  # the last address of the /80
    assert p.allocate(key(2)).ip == IP6(base + (1 << 48) - 1)
    # wrapped: ::0 is skipped, offset 1 is held, so offset 2
    assert held.ip == IP6(base + 1)
    assert p.allocate(key(3)).ip == IP6(base + 2)


def test_set_enis_rejects_a_prefix_that_is_not_an_80_or_is_on_two_enis() -> None:
    p = Ipam6()
    with pytest.raises(ConfigError):
        p.set_enis([eni(0, prefixes6=("2001:db8:1:2::/64",))])
    with pytest.raises(ConfigError):
        p.set_enis([eni(0, prefixes6=(P1,)), eni(1, prefixes6=(P1,))])


def test_no_prefix_and_none_coming_fails_at_once_with_the_reason() -> None:
    p = Ipam6()
    demand: list[int] = []
    p.add_demand_listener(demand.append)
    with pytest.raises(PoolExhausted, match="subnet-1 has no IPv6 CIDR"):
        p.allocate(key(1), wait=3600.0, can_grow=lambda: "subnet-1 has no IPv6 CIDR")
    assert demand == []  # it never waited (it would count as demand)
    assert p.outlook(lambda: "subnet-1 has no IPv6 CIDR").endswith("subnet-1 has no IPv6 CIDR")
    assert p.outlook(lambda: "") == ""


def test_an_add_waits_for_a_prefix_that_is_coming_and_counts_as_demand() -> None:
    p = Ipam6()
    demand: list[int] = []
    p.add_demand_listener(demand.append)
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(p.allocate(key(1), wait=30.0, can_grow=lambda: "")))
    t.start()
    while p.demand == 0:
        time.sleep(0.01)
    p.set_enis([eni(0, prefixes6=(P1,))])
    t.join(10)
    assert not t.is_alive()
    (alloc,) = got
    assert alloc == p.get(key(1))
    assert demand == [1, 0] and p.demand == 0


def test_release_req_of_an_80_is_confirmed_only_when_no_pod_holds_an_address_of_it() -> None:
    p = pool(P1)
    changes: list[Ipv6Change] = []
    p.add_listener(changes.append)
    p.allocate(key(1))
    assert p.confirm_release([NET6(P1)]) == set()  # a pod holds one
    assert p.confirm_release([NET6(P2)]) == set()  # not on the ENIs (yet)
    p.release(key(1))
    assert p.confirm_release([NET6(P1)]) == {NET6(P1)}
    assert p.confirm_release([NET6(P1)]) == {NET6(P1)}  # asked again: still confirmed, once emitted
    assert [c.prefix for c in changes if c.kind is ChangeKind.CONFIRM] == [NET6(P1)]
    assert p.released() == {NET6(P1)}
    # nothing is allocated from it after
    with pytest.raises(PoolExhausted):
        p.allocate(key(2))
    p.set_enis([eni(0, prefixes6=(P2,))])  # it left the ENIs: forgotten
    assert p.released() == set()
    assert p.allocate(key(2)).prefix == NET6(P2)


def test_a_vanished_prefix_keeps_its_pods_assignments_and_reports_them() -> None:
    p = pool(P1)
    a = p.allocate(key(1))
    changes: list[Ipv6Change] = []
    p.add_listener(changes.append)
    diff = p.set_enis([eni(0)])
    assert diff.removed == {NET6(P1)} and [v.key for v in diff.vanished] == [key(1)]
    assert [c.kind for c in changes] == [ChangeKind.VANISH]
    assert p.get(key(1)) == a
    with pytest.raises(PoolExhausted):
        p.allocate(key(2))  # nothing to allocate from
    assert p.release(key(1)) == a.ip


def test_checkpoint_round_trip_keeps_allocations_cursor_and_released() -> None:
    ipam = Ipam(cooldown_seconds=30.0)
    enis = [eni(0, ("10.0.0.20",), (P1, P2))]
    ipam.set_enis(enis)
    p6 = Ipam6()
    p6.set_enis(enis)
    pools = NodePools(ipam, p6)
    ipam.allocate(key(1))
    held = p6.allocate(key(1))
    gone = p6.allocate(key(2))
    p6.release(key(2))
    assert p6.confirm_release([NET6(P2)]) == {NET6(P2)}
    _, payload = pools.snapshot()
    back = NodePools.from_checkpoint(payload)
    assert back.ipam.get(key(1)) == ipam.get(key(1))
    assert back.ipam6.get(key(1)) == held
    assert back.ipam6.released() == {NET6(P2)}
    fresh = back.ipam6.allocate(key(3))
    assert fresh.ip not in (held.ip, gone.ip) and int(fresh.ip) > int(gone.ip)  # the cursor survived


def test_a_checkpoint_written_before_ipv6_loads_with_an_empty_ipv6_pool() -> None:
    ipam = Ipam(cooldown_seconds=30.0)
    ipam.set_enis([eni(0, ("10.0.0.20",))])
    ipam.allocate(key(1))
    old = ipam.to_checkpoint()  # the payload format of agents before IPv6
    assert "ipv6" not in old
    back = NodePools.from_checkpoint(old)
    assert back.ipam.get(key(1)) is not None and back.ipam6.allocations() == []


def test_a_vanished_allocation_survives_the_checkpoint_with_its_eni() -> None:
    ipam = Ipam(cooldown_seconds=30.0)
    p6 = Ipam6()
    p6.set_enis([eni(0, prefixes6=(P1,))])
    a = p6.allocate(key(1))
    p6.set_enis([eni(0)])
    _, payload = NodePools(ipam, p6).snapshot()
    back = NodePools.from_checkpoint(payload)
    assert back.ipam6.get(key(1)) == a


@pytest.mark.parametrize("section", [
    {"version": 2, "cursors": {}, "allocations": [], "released": []},
    {"version": 1, "cursors": {P1: 0}, "allocations": [], "released": []},
    {"version": 1, "cursors": {}, "released": []},
    "nope",
])
def test_a_malformed_ipv6_section_is_a_checkpoint_error(section: object) -> None:
    ipam = Ipam(cooldown_seconds=30.0)
    ipam.set_enis([eni(0, prefixes6=(P1,))])
    with pytest.raises(CheckpointError):
        NodePools.from_checkpoint({**ipam.to_checkpoint(), "ipv6": section})


def test_gc_releases_keys_not_valid_and_eni_record_updates_follow() -> None:
    p = pool(P1)
    p.allocate(key(1))
    p.allocate(key(2))
    assert [a.key for a in p.gc([key(1)])] == [key(2)]
    newer = replace(eni(0, prefixes6=(P1,)), security_groups=("sg-2",))
    p.set_enis([newer])
    got = p.get(key(1))
    assert got is not None and got.eni == newer
