"""SubnetPool: EC2's subnet address bookkeeping (unique, never reserved, never negative)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpcnet_sim.ec2.errors import SimApiError
from vpcnet_sim.ec2.ipam import SubnetPool


def pool(cidr: str) -> SubnetPool:
    return SubnetPool(ipaddress.IPv4Network(cidr))


def test_reserved_addresses_never_handed_out() -> None:
    p = pool("10.0.0.0/28")  # 16 addresses, 11 usable
    got = p.allocate_ips(11)
    assert sorted(got, key=ipaddress.IPv4Address) == [f"10.0.0.{i}" for i in range(4, 15)]
    assert p.free_count() == 0
    with pytest.raises(SimApiError) as exc:
        p.allocate_ips(1)
    assert exc.value.code == "InsufficientFreeAddressesInSubnet"
    assert p.free_count() == 0


def test_all_or_nothing() -> None:
    p = pool("10.0.0.0/28")
    with pytest.raises(SimApiError):
        p.allocate_ips(12)
    assert p.free_count() == 11


def test_claim_checks() -> None:
    p = pool("10.0.0.0/24")
    p.claim_ip("10.0.0.10")
    codes = []
    for ip in ("10.0.0.10", "10.0.0.1", "10.0.0.255", "10.0.1.5", "nope"):
        with pytest.raises(SimApiError) as exc:
            p.claim_ip(ip)
        codes.append(exc.value.code)
    assert codes == ["InvalidIPAddress.InUse"] + ["InvalidParameterValue"] * 4


def test_prefixes_aligned_disjoint_and_counted() -> None:
    p = pool("10.0.0.0/24")
    before = p.free_count()
    got = [ipaddress.IPv4Network(x) for x in p.allocate_prefixes(3)]
    assert all(n.prefixlen == 28 and int(n.network_address) % 16 == 0 for n in got)
    assert str(got[0]) != "10.0.0.0/28"  # the block holding reserved addresses is never delegated
    assert p.free_count() == before - 48
    ip = p.allocate_ips(1)[0]
    assert not any(ipaddress.IPv4Address(ip) in n for n in got)
    with pytest.raises(SimApiError):
        p.claim_ip(str(got[0].network_address + 3))
    p.release_prefixes([str(got[0])])
    assert p.free_count() == before - 32 - 1


def test_cidr_blocks_exhausted_by_fragmentation() -> None:
    p = pool("10.0.0.0/26")
    p.claim_ip("10.0.0.17")
    p.claim_ip("10.0.0.33")
    with pytest.raises(SimApiError) as exc:
        p.allocate_prefixes(1)
    assert exc.value.code == "InsufficientCidrBlocks"
    with pytest.raises(SimApiError) as exc:
        p.allocate_prefixes(4)  # 64 > free addresses at all
    assert exc.value.code == "InsufficientFreeAddressesInSubnet"


def test_claim_prefix_rules() -> None:
    p = pool("10.0.0.0/24")
    assert p.claim_prefix("10.0.0.32/28") == "10.0.0.32/28"
    for bad in ("10.0.0.32/28", "10.0.0.40/28", "10.0.0.48/27", "10.0.1.0/28", "10.0.0.0/28", "10.0.0.240/28"):
        with pytest.raises(SimApiError) as exc:
            p.claim_prefix(bad)
        assert exc.value.code == "InvalidParameterValue", bad


ops = st.lists(
    st.one_of(
        st.tuples(st.just("ips"), st.integers(1, 20)),
        st.tuples(st.just("prefixes"), st.integers(1, 3)),
        st.tuples(st.just("claim"), st.integers(0, 255)),
        st.tuples(st.just("release"), st.integers(0, 50)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_invariants_under_any_sequence(sequence: list[tuple[str, int]]) -> None:
    net = ipaddress.IPv4Network("10.1.0.0/24")
    p = SubnetPool(net)
    ips: list[str] = []
    prefixes: list[str] = []
    for op, n in sequence:
        try:
            if op == "ips":
                ips += p.allocate_ips(n)
            elif op == "prefixes":
                prefixes += p.allocate_prefixes(n)
            elif op == "claim":
                ip = str(net.network_address + n)
                p.claim_ip(ip)
                ips.append(ip)
            elif ips:
                victim = ips.pop(n % len(ips))
                p.release_ips([victim])
        except SimApiError:
            pass
        addrs = [ipaddress.IPv4Address(i) for i in ips]
        nets = [ipaddress.IPv4Network(x) for x in prefixes]
        assert len(set(ips)) == len(ips)
        reserved = {net.network_address + i for i in range(4)} | {net.broadcast_address}
        assert not reserved & set(addrs)
        assert not any(a in n for a in addrs for n in nets)
        assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
        assert p.free_count() == 251 - len(ips) - 16 * len(prefixes) >= 0
