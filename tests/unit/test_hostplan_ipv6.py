"""The pure host plan for ENIs holding IPv6 /80 prefixes (#14 item 4)."""

from __future__ import annotations

import ipaddress

import pytest

from vpcnet.agent.hostplan import HostPlan, RouteSpec, plan_host
from vpcnet.domain import EniRecord
from vpcnet.errors import HostNetworkError

N = ipaddress.IPv4Network
A = ipaddress.IPv4Address
N6 = ipaddress.IPv6Network
GW6 = ipaddress.IPv6Address("fe80::1")
MAC0, MAC1 = "0a:00:00:00:10:00", "0a:00:00:00:10:01"
LINKS = {MAC0: "eth0", MAC1: "eth1"}


def eni(idx: int, *, prefixes6: tuple[str, ...] = ()) -> EniRecord:
    return EniRecord(
        f"eni-{idx}", (MAC0, MAC1)[idx], idx, f"subnet-{idx}", N(f"10.0.{16 * idx}.0/20"),
        A(f"10.0.{16 * idx}.9"), is_primary=idx == 0,
        ipv6_prefixes=tuple(N6(p) for p in prefixes6),
    )


def plan(enis: list[EniRecord], gateway6: ipaddress.IPv6Address | None = GW6) -> HostPlan:
    return plan_host(enis, LINKS, primary_ip=A("10.0.0.9"), vpc_cidrs=[N("10.0.0.0/16")], snat=True,
                     ipv6_gateway=gateway6)


def test_an_ipv4_node_gets_no_ipv6_sysctl_or_route() -> None:
    p = plan([eni(0), eni(1)], gateway6=None)
    assert not any("ipv6" in key for key in p.sysctls)
    assert all(r.dst.version == 4 for r in p.routes)


def test_a_primary_eni_with_a_prefix_forwards_ipv6_keeps_its_ras_and_answers_ndp() -> None:
    p = plan([eni(0, prefixes6=("2001:db8:1:2:3::/80",)), eni(1)])
    keys = list(p.sysctls)
    assert p.sysctls["net/ipv6/conf/all/forwarding"] == "1"
    assert p.sysctls["net/ipv6/conf/eth0/accept_ra"] == "2"
    assert keys.index("net/ipv6/conf/eth0/accept_ra") < keys.index("net/ipv6/conf/all/forwarding")
    assert p.sysctls["net/ipv6/conf/eth0/proxy_ndp"] == "1"
    assert "net/ipv6/conf/eth1/proxy_ndp" not in p.sysctls  # eth1 holds no /80
    assert all(r.dst.version == 4 for r in p.routes), "the primary's pods use the main table"
    assert p.sysctls["net/ipv4/ip_forward"] == "1"  # IPv4 as before


def test_a_secondary_eni_with_a_prefix_gets_an_ipv6_default_route_in_its_table() -> None:
    p = plan([eni(0), eni(1, prefixes6=("2001:db8:1:2:4::/80",))])
    assert RouteSpec(101, N6("::/0"), "eth1", GW6) in p.routes
    assert RouteSpec(101, N("0.0.0.0/0"), "eth1", A("10.0.16.1")) in p.routes
    assert p.sysctls["net/ipv6/conf/eth1/proxy_ndp"] == "1"
    assert p.sysctls["net/ipv6/neigh/eth1/proxy_delay"] == "0"
    assert p.sysctls["net/ipv6/conf/eth0/accept_ra"] == "2"
    assert 101 in p.tables


def test_no_ipv6_default_route_is_refused_by_name() -> None:
    with pytest.raises(HostNetworkError, match="no IPv6 default route.*eni-1"):
        plan([eni(0), eni(1, prefixes6=("2001:db8:1:2:4::/80",))], gateway6=None)


def test_no_nat_for_ipv6() -> None:
    p = plan([eni(0, prefixes6=("2001:db8:1:2:3::/80",))])
    assert {c.table for c in p.chains} == {"nat"}
    for chain in p.chains:
        assert not any(":" in arg for rule in chain.rules for arg in rule), "an IPv6 address in a NAT rule"
