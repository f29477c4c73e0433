"""HostNetwork converges a real namespace to a plan, idempotently, and undoes it."""

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

N = ipaddress.IPv4Network
A = ipaddress.IPv4Address
VPC = N("10.0.0.0/16")
MAC0, MAC1, MAC2 = "0a:00:00:00:10:00", "0a:00:00:00:10:01", "0a:00:00:00:10:02"
E0 = EniRecord("eni-0", MAC0, 0, "s0", N("10.0.0.0/20"), A("10.0.0.4"), is_primary=True)
E1 = EniRecord("eni-1", MAC1, 1, "s1", N("10.0.16.0/20"), A("10.0.16.9"), ips=(A("10.0.16.10"),))
E2 = EniRecord("eni-2", MAC2, 2, "s0", N("10.0.0.0/20"), A("10.0.0.9"), ips=(A("10.0.0.10"),))


@pytest.fixture
def host(netns_prefix: str) -> Iterator[str]:
    """A node namespace with three NICs (veths whose peers stay in the namespace)."""
    ns = f"{netns_prefix}host"
    nx.netns_add(ns)
    for i, mac in enumerate((MAC0, MAC1, MAC2)):
        nx.ip(ns, "link", "add", f"eth{i}", "address", mac, "type", "veth", "peer", "name", f"peer{i}")
        nx.ip(ns, "link", "set", f"peer{i}", "up")
    nx.ip_batch(ns, ["link set eth0 up", "address add 10.0.0.4/20 dev eth0",
                     "route add default via 10.0.0.1"])
    yield ns  # netns_prefix's teardown deletes it


def plan(
    ns_links: dict[str, str],
    enis: list[EniRecord],
    *,
    snat: bool = True,
    snat_exclusions: tuple[N, ...] = (),
    imds_redirect_port: int = 0,
) -> HostPlan:
    return plan_host(
        enis,
        ns_links,
        primary_ip=A("10.0.0.4"),
        vpc_cidrs=[VPC],
        snat=snat,
        snat_exclusions=snat_exclusions,
        imds_redirect_port=imds_redirect_port,
    )


def dump(ns: str) -> str:
    out = "\n".join(
        nx.run(["ip", "netns", "exec", ns, *argv])
        for argv in (["ip", "-4", "rule"], ["ip", "-4", "route", "show", "table", "all"],
                     ["iptables-save", "-t", "nat"])
    )
    # iptables-save's "# Generated ... on <time>" comments change every second.
    return "\n".join(line for line in out.splitlines() if not line.startswith("#"))


def test_converges_once_then_changes_nothing(host: str) -> None:
    hn = HostNetwork(host)
    links = {m: li.ifname for m, li in hn.links_by_mac().items()}
    p = plan(links, [E0, E1, E2], snat_exclusions=(N("172.16.0.0/12"),), imds_redirect_port=8181)
    first = hn.ensure(p)
    assert first.changes
    state = dump(host)
    assert hn.ensure(p).changes == []
    # A new agent process (no memory of what it did) also finds nothing to do.
    assert HostNetwork(host).ensure(p).changes == []
    assert dump(host) == state

    eth1 = nx.ip_json(host, "link", "show", "eth1")[0]
    assert eth1["mtu"] == 9001 and "UP" in eth1["flags"]
    assert "10.0.16.9/20" in nx.ip(host, "-4", "-o", "addr", "show", "dev", "eth1")
    main = nx.ip(host, "route")
    assert "10.0.16.0/20 dev eth1" not in main, "connected route of a secondary ENI stays out of main"
    assert "default via 10.0.16.1 dev eth1" in nx.ip(host, "route", "show", "table", "101")
    assert "default via 10.0.0.1 dev eth2" in nx.ip(host, "route", "show", "table", "102")
    rules = nx.ip(host, "rule")
    for expected in ("1024:\tfrom all to 10.0.0.0/16 goto 1535",
                     "1024:\tfrom all to 172.16.0.0/12 goto 1535",
                     "1025:\tfrom all lookup main", "1535:\tfrom all nop"):
        assert expected in rules
    nat = nx.run(["ip", "netns", "exec", host, "iptables-save", "-t", "nat"])
    assert "-A VPCNET-SNAT -j SNAT --to-source 10.0.0.4 --random-fully" in nat
    assert "--to-destination 10.0.0.4:8181" in nat
    sysctl = nx.run(["ip", "netns", "exec", host, "sysctl", "-n", "net.ipv4.ip_forward",
                     "net.ipv4.conf.eth1.rp_filter"]).split()
    assert sysctl == ["1", "2"]


def test_policy_routing_sends_pod_traffic_leaving_the_vpc_by_the_primary_eni(host: str) -> None:
    hn = HostNetwork(host)
    links = {m: li.ifname for m, li in hn.links_by_mac().items()}
    hn.ensure(plan(links, [E0, E1]))
    # What podnet adds for a pod holding 10.0.16.10 on ENI1:
    nx.ip(host, "rule", "add", "from", "10.0.16.10", "lookup", "101", "pref", "1536")

    def route(dst: str) -> str:
        return nx.ip(host, "route", "get", dst, "from", "10.0.16.10", "iif", "peer0")

    assert "dev eth1" in route("10.0.5.5"), "inside the VPC: by the pod's own ENI"
    assert "dev eth0" in route("198.51.100.10"), "leaving the VPC: by the primary ENI (SNAT)"

    hn.ensure(plan(links, [E0, E1], snat=False))
    assert "dev eth1" in route("198.51.100.10"), "without SNAT (NAT gateway): by its own ENI"


def test_snat_off_and_removed_enis_are_unprogrammed(host: str) -> None:
    hn = HostNetwork(host)
    links = {m: li.ifname for m, li in hn.links_by_mac().items()}
    hn.ensure(plan(links, [E0, E1, E2], imds_redirect_port=8181))
    report = hn.ensure(plan(links, [E0, E1], snat=False))
    assert any("stale table 102" in c for c in report.changes)
    assert nx.ip(host, "route", "show", "table", "102").strip() == ""
    assert "default via 10.0.16.1" in nx.ip(host, "route", "show", "table", "101")
    rules = nx.ip(host, "rule")
    assert "goto" not in rules and "nop" not in rules and "1025:" not in rules
    nat = nx.run(["ip", "netns", "exec", host, "iptables-save", "-t", "nat"])
    assert "VPCNET" not in nat
    assert hn.ensure(plan(links, [E0, E1], snat=False)).changes == []
    hn.remove_all()
    assert nx.ip(host, "route", "show", "table", "101").strip() == ""


def test_a_missing_namespace_fails_instead_of_being_created(netns_prefix: str) -> None:
    hn = HostNetwork(f"{netns_prefix}does-not-exist")
    with pytest.raises(HostNetworkError):
        hn.links_by_mac()
    assert nx.netns_list(netns_prefix) == []
