"""HostNetwork converges a real namespace for ENIs holding IPv6 /80s (#14 item 4):
forwarding, accept_ra, proxy_ndp, the secondary ENI's IPv6 table, no IPv6 NAT."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from vpcnet.agent.hostnet import HostNetwork
from vpcnet.agent.hostplan import HostPlan, plan_host
from vpcnet.domain import EniRecord
from vpcnet.errors import HostNetworkError
from vpcnet_sim import netns as nx

pytestmark = pytest.mark.timeout(120)

N, A, N6 = ipaddress.IPv4Network, ipaddress.IPv4Address, ipaddress.IPv6Network
MAC0, MAC1 = "0a:00:00:00:16:00", "0a:00:00:00:16:01"
GW6 = "fe80::1"
E0 = EniRecord("eni-0", MAC0, 0, "s0", N("10.0.0.0/20"), A("10.0.0.4"), is_primary=True,
               ipv6_prefixes=(N6("2001:db8:1:2:3::/80"),))
E1 = EniRecord("eni-1", MAC1, 1, "s1", N("10.0.16.0/20"), A("10.0.16.9"), ips=(A("10.0.16.10"),),
               ipv6_prefixes=(N6("2001:db8:1:2:4::/80"),))
E1_V4 = EniRecord("eni-1", MAC1, 1, "s1", N("10.0.16.0/20"), A("10.0.16.9"), ips=(A("10.0.16.10"),))
POD_ON_E1 = "2001:db8:1:2:4::5"


@pytest.fixture
def host(netns_prefix: str) -> Iterator[str]:
    """A dual-stack node namespace with two NICs and an IPv6 default route."""
    ns = f"{netns_prefix}host"
    nx.netns_add(ns)
    for i, mac in enumerate((MAC0, MAC1)):
        nx.ip(ns, "link", "add", f"eth{i}", "address", mac, "type", "veth", "peer", "name", f"peer{i}")
        nx.ip(ns, "link", "set", f"peer{i}", "up")
    nx.ip_batch(ns, ["link set eth0 up", "address add 10.0.0.4/20 dev eth0", "route add default via 10.0.0.1",
                     "address add 2001:db8:1:2::10/128 dev eth0 nodad",
                     f"route add default via {GW6} dev eth0"])
    yield ns  # netns_prefix's teardown deletes it


def plan(hn: HostNetwork, enis: list[EniRecord]) -> HostPlan:
    links = {m: li.ifname for m, li in hn.links_by_mac().items()}
    return plan_host(enis, links, primary_ip=A("10.0.0.4"), vpc_cidrs=[N("10.0.0.0/16")], snat=True,
                     ipv6_gateway=hn.ipv6_default_gateway())


def sysctls(ns: str, *keys: str) -> list[str]:
    return nx.run(["ip", "netns", "exec", ns, "sysctl", "-n", *keys]).split()


def test_a_secondary_eni_with_a_prefix_gets_its_ipv6_table_once(host: str) -> None:
    hn = HostNetwork(host)
    assert str(hn.ipv6_default_gateway()) == GW6
    p = plan(hn, [E0, E1])
    assert hn.ensure(p).changes
    assert f"default via {GW6} dev eth1" in nx.ip(host, "-6", "route", "show", "table", "101")
    assert "default via 10.0.16.1 dev eth1" in nx.ip(host, "-4", "route", "show", "table", "101")
    assert sysctls(host, "net.ipv6.conf.all.forwarding", "net.ipv6.conf.eth0.accept_ra",
                   "net.ipv6.conf.eth0.proxy_ndp", "net.ipv6.conf.eth1.proxy_ndp",
                   "net.ipv6.neigh.eth1.proxy_delay") == ["1", "2", "1", "1", "0"]
    assert hn.ensure(p).changes == []
    assert HostNetwork(host).ensure(p).changes == [], "a restarted agent finds nothing to do"

    # With podnet's rule of a pod of ENI1, its IPv6 traffic leaves by ENI1.
    nx.ip(host, "-6", "rule", "add", "from", POD_ON_E1, "lookup", "101", "pref", "1536")
    out = nx.ip(host, "-6", "route", "get", "2001:db8:ffff::10", "from", POD_ON_E1, "iif", "peer0")
    assert "dev eth1" in out and f"via {GW6}" in out, out

    # The ENI gives its /80 back: its IPv6 route goes, its IPv4 routes stay.
    hn.ensure(plan(hn, [E0, E1_V4]))
    assert nx.ip(host, "-6", "route", "show", "table", "101").strip() == ""
    assert "default via 10.0.16.1" in nx.ip(host, "-4", "route", "show", "table", "101")

    hn.ensure(p)
    hn.remove_all()
    assert nx.ip(host, "-6", "route", "show", "table", "101").strip() == ""
    assert nx.ip(host, "-4", "route", "show", "table", "101").strip() == ""


def test_no_ip6tables_nat_rule_of_vpcnet(host: str) -> None:
    hn = HostNetwork(host)
    hn.ensure(plan(hn, [E0, E1]))
    nat4 = nx.run(["ip", "netns", "exec", host, "iptables-save", "-t", "nat"])
    assert "VPCNET-SNAT" in nat4, "IPv4 SNAT as before"
    nat6 = nx.run(["ip", "netns", "exec", host, "ip6tables-save", "-t", "nat"])
    assert "VPCNET" not in nat6 and "vpcnet" not in nat6


def test_no_ipv6_default_route_is_reported_clearly(host: str) -> None:
    nx.ip(host, "-6", "route", "del", "default")
    hn = HostNetwork(host)
    assert hn.ipv6_default_gateway() is None
    with pytest.raises(HostNetworkError, match="no IPv6 default route"):
        plan(hn, [E0, E1])
