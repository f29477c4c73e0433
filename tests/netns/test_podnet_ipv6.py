"""PodNetwork programs IPv6-only and dual pods into real namespaces (#14 item 4):
addresses, routes, rules and NDP proxy entries, traffic over them, CHECK, DEL,
rollback and leftover removal. The node's IPv4-only behaviour is covered by the
existing CNI tests."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fixtures.netns import wait_for
from vpcnet.agent.ipam import AttachmentKey
from vpcnet.agent.podnet import PodNetwork, PodSpec
from vpcnet.errors import PodNetworkError
from vpcnet.settings import AgentSettings
from vpcnet_sim import netns as nx

pytestmark = pytest.mark.timeout(120)

ENI_MAC = "0a:00:00:00:66:00"
SUBNET6 = "2001:db8:1:2::/64"
ROUTER6 = "2001:db8:1:2::1"  # the VPC router's global address, reached via the node
NODE6 = "2001:db8:1:2::10"
PREFIX80 = "2001:db8:1:2:3::/80"
TABLE = 101


def pod_ip6(n: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Network(PREFIX80)[n]


@dataclass
class Node:
    ns: str
    router: str
    podnet: PodNetwork
    prefix: str
    pods: int = 0

    def new_netns(self) -> str:
        self.pods += 1
        name = f"{self.prefix}pod{self.pods}"
        nx.netns_add(name)
        return name

    def spec(self, netns: str, *, ip: str | None = None, ip6: ipaddress.IPv6Address | None = None,
             table6: int | None = None, mac: str = ENI_MAC) -> PodSpec:
        key = AttachmentKey(f"ctr-{netns}", "eth0")
        return PodSpec(key, f"/run/netns/{netns}", ipaddress.IPv4Address(ip) if ip else None, None, 9001,
                       ip6=ip6, table6=table6, ip6_link_mac=mac)


@pytest.fixture
def node(netns_prefix: str) -> Iterator[Node]:
    """A node namespace whose ENI link (eni0) faces a router namespace on the subnet.

    The router has the subnet /64 on-link and no static neighbour: it finds pod
    addresses by NDP only. The node routes IPv6 as the host plan makes it do
    (forwarding on, default route via the router's link-local address).
    """
    ns, router = f"{netns_prefix}node", f"{netns_prefix}router"
    nx.netns_add(ns)
    nx.netns_add(router)
    nx.ip(ns, "link", "add", "eni0", "address", ENI_MAC, "type", "veth", "peer", "name", "sub0",
          "netns", router)
    nx.ip_batch(router, ["link set sub0 up", "address add fe80::1/64 dev sub0 nodad",
                         f"address add {ROUTER6}/64 dev sub0 nodad"])
    nx.ip_batch(ns, ["link set eni0 up", f"address add {NODE6}/128 dev eni0 nodad",
                     "route add default via fe80::1 dev eni0"])
    nx.sysctl(ns, {"net.ipv6.conf.all.forwarding": "1", "net.ipv4.ip_forward": "1"})
    # eni0's own link-local address passes DAD about a second after link up; only then
    # does the kernel add its local and anycast routes. A node's ENI is long past that
    # when pods start; without the wait, those routes appear during a test and look
    # like state the pod path left behind (a CI run failed that way).
    wait_for(lambda: link_local_settled(ns, "eni0"), timeout=10, what="eni0's link-local address past DAD")
    podnet = PodNetwork(AgentSettings(node_name="v6", host_netns=ns))
    try:
        yield Node(ns, router, podnet, netns_prefix)
    finally:
        podnet.close()  # netns_prefix's teardown deletes the namespaces


def link_local_settled(ns: str, dev: str) -> bool:
    addrs = nx.ip_json(ns, "-6", "addr", "show", "dev", dev)[0]["addr_info"]
    local = [a for a in addrs if a.get("scope") == "link"]
    return bool(local) and not any(a.get("tentative") for a in addrs) and "anycast fe80::" in nx.ip(
        ns, "-6", "route", "show", "table", "local", "dev", dev)


def ping(netns: str, address: str) -> bool:
    return nx.ping(netns, address, count=1, timeout=4)


def host_v6(ns: str) -> str:
    """The node's IPv6 routes, rules and proxy entries (what the pod path may touch)."""
    return "\n".join(
        nx.ip(ns, "-6", *args) for args in (("route", "show", "table", "all"), ("rule",), ("neigh", "show", "proxy"))
    )


def test_an_ipv6_only_pod_is_programmed_checked_and_removed(node: Node) -> None:
    before = host_v6(node.ns)
    netns = node.new_netns()
    spec = node.spec(netns, ip6=pod_ip6(5), table6=TABLE)
    link = node.podnet.setup(spec)

    addrs = nx.ip_json(netns, "-6", "addr", "show", "dev", "eth0")[0]["addr_info"]
    mine = [a for a in addrs if a["local"] == str(pod_ip6(5))]
    assert mine and mine[0]["prefixlen"] == 128
    assert not mine[0].get("tentative") and not mine[0].get("dadfailed"), mine  # usable at once
    assert "default via fe80::1 dev eth0" in nx.ip(netns, "-6", "route")
    assert f"fe80::1 dev eth0 lladdr {link.host_mac} PERMANENT" in nx.ip(netns, "-6", "neigh")
    assert nx.ip(netns, "-4", "addr", "show", "dev", "eth0").count("inet ") == 0, "no IPv4 on an ipv6-only pod"
    assert "fe80::1/64" in nx.ip(node.ns, "-6", "addr", "show", "dev", link.host_ifname)
    assert f"{pod_ip6(5)} dev {link.host_ifname}" in nx.ip(node.ns, "-6", "route")
    rules = nx.ip(node.ns, "-6", "rule")
    assert f"512:\tfrom all to {pod_ip6(5)} lookup main" in rules
    assert f"1536:\tfrom {pod_ip6(5)} lookup {TABLE}" in rules
    assert f"{pod_ip6(5)} dev eni0 proxy" in nx.ip(node.ns, "-6", "neigh", "show", "proxy")
    assert nx.run(["ip", "netns", "exec", node.ns, "sysctl", "-n", "net.ipv6.conf.eni0.proxy_ndp"]).strip() == "1"
    node.podnet.check(spec)

    node.podnet.teardown(spec.key, None, ip6=spec.ip6, table6=TABLE, ip6_link_mac=ENI_MAC)
    assert host_v6(node.ns) == before
    node.podnet.teardown(spec.key, None, ip6=spec.ip6, table6=TABLE, ip6_link_mac=ENI_MAC)  # idempotent
    with pytest.raises(PodNetworkError):
        node.podnet.check(spec)


def test_a_dual_pod_gets_both_families_and_keep_link_teardown_removes_both(node: Node) -> None:
    before = host_v6(node.ns) + nx.ip(node.ns, "-4", "rule")
    netns = node.new_netns()
    spec = node.spec(netns, ip="10.0.0.20", ip6=pod_ip6(6))
    link = node.podnet.setup(spec)
    assert "10.0.0.20/32" in nx.ip(netns, "-4", "addr", "show", "dev", "eth0")
    assert "default via 169.254.1.1 dev eth0" in nx.ip(netns, "-4", "route")
    assert f"{pod_ip6(6)}/128" in nx.ip(netns, "-6", "addr", "show", "dev", "eth0")
    assert f"10.0.0.20 dev {link.host_ifname}" in nx.ip(node.ns, "-4", "route")
    assert f"{pod_ip6(6)} dev {link.host_ifname}" in nx.ip(node.ns, "-6", "route")
    node.podnet.check(spec)

    # DEL as the CNI server does it: cut off first, the veth destroyed later.
    node.podnet.teardown(spec.key, spec.ip, None, keep_link=True, ip6=spec.ip6, ip6_link_mac=ENI_MAC)
    assert host_v6(node.ns) + nx.ip(node.ns, "-4", "rule") == before
    assert "10.0.0.20" not in nx.ip(node.ns, "-4", "route")
    node.podnet.remove_link(spec.key)


def test_pods_reach_each_other_and_the_router_over_ipv6(node: Node) -> None:
    a, b = node.new_netns(), node.new_netns()
    node.podnet.setup(node.spec(a, ip6=pod_ip6(7)))
    node.podnet.setup(node.spec(b, ip="10.0.0.21", ip6=pod_ip6(8)))
    assert ping(a, str(pod_ip6(8))), "pod -> pod over IPv6 on one node"
    assert ping(b, str(pod_ip6(7)))
    assert ping(a, ROUTER6), "pod -> an address reached via the node's default route"


def router_neighbour(node: Node, address: str) -> dict[str, object]:
    entries = [n for n in nx.ip_json(node.router, "-6", "neigh", "show", "dev", "sub0") if n["dst"] == address]
    return entries[0] if entries else {}


def test_the_router_resolves_a_pod_by_ndp_until_its_del(node: Node) -> None:
    netns = node.new_netns()
    spec = node.spec(netns, ip6=pod_ip6(9))
    node.podnet.setup(spec)
    assert ping(node.router, str(pod_ip6(9))), "the router reaches the pod (the node answered NDP for it)"
    learned = router_neighbour(node, str(pod_ip6(9)))
    assert learned.get("lladdr") == ENI_MAC, learned  # the answer came from the node's ENI

    node.podnet.teardown(spec.key, None, ip6=spec.ip6, ip6_link_mac=ENI_MAC)
    nx.ip(node.router, "-6", "neigh", "flush", "dev", "sub0")
    assert not ping(node.router, str(pod_ip6(9)))
    after = router_neighbour(node, str(pod_ip6(9)))
    assert after.get("lladdr") is None, f"the node still answers NDP for a deleted pod: {after}"


def test_a_failed_step_leaves_no_ipv6_route_rule_or_proxy_entry(node: Node) -> None:
    before = host_v6(node.ns)
    # The ENI link is unknown: the veth, the /128 route and the rules exist by then.
    netns = node.new_netns()
    spec = node.spec(netns, ip6=pod_ip6(10), table6=TABLE, mac="0a:00:00:00:99:99")
    with pytest.raises(PodNetworkError, match="no host link has MAC"):
        node.podnet.setup(spec)
    assert host_v6(node.ns) == before
    assert nx.ip(netns, "link", "show", "eth0", check=False) == ""

    # A dual pod whose IPv4 address something else routes: its IPv6 half (done first,
    # proxy entry included) is undone.
    nx.ip(node.ns, "route", "add", "10.0.0.22/32", "dev", "lo")
    dual = node.spec(node.new_netns(), ip="10.0.0.22", ip6=pod_ip6(11), table6=TABLE)
    with pytest.raises(PodNetworkError, match="File exists"):
        node.podnet.setup(dual)
    assert host_v6(node.ns) == before


def test_check_names_a_missing_ipv6_route_or_proxy_entry(node: Node) -> None:
    netns = node.new_netns()
    spec = node.spec(netns, ip6=pod_ip6(12), table6=TABLE)
    link = node.podnet.setup(spec)
    node.podnet.check(spec)
    nx.ip(node.ns, "-6", "neigh", "del", "proxy", str(pod_ip6(12)), "dev", "eni0")
    with pytest.raises(PodNetworkError, match="NDP proxy entry"):
        node.podnet.check(spec)
    nx.ip(node.ns, "-6", "neigh", "add", "proxy", str(pod_ip6(12)), "dev", "eni0")
    node.podnet.check(spec)
    nx.ip(node.ns, "-6", "route", "del", f"{pod_ip6(12)}/128", "dev", link.host_ifname)
    with pytest.raises(PodNetworkError, match="host route"):
        node.podnet.check(spec)
    nx.ip(netns, "-6", "route", "del", "default")
    with pytest.raises(PodNetworkError, match="default route via fe80::1"):
        node.podnet.check(spec)


def test_leftover_ipv6_rules_and_proxy_entries_of_unassigned_addresses_go(node: Node) -> None:
    before = host_v6(node.ns)
    gone, live = node.new_netns(), node.new_netns()
    gone_spec = node.spec(gone, ip6=pod_ip6(13), table6=TABLE)
    gone_link = node.podnet.setup(gone_spec)
    node.podnet.setup(node.spec(live, ip6=pod_ip6(14), table6=TABLE))
    # The veth vanished (its route with it) but its rules and proxy entry stayed.
    nx.ip(node.ns, "link", "del", gone_link.host_ifname)
    # pod 14 is routed: it stays even though the list names it.
    assert node.podnet.remove_leftovers([pod_ip6(13), pod_ip6(14), ipaddress.IPv4Address("10.0.0.99")]) == 3
    state = host_v6(node.ns)
    assert str(pod_ip6(13)) not in state
    assert f"{pod_ip6(14)} dev eni0 proxy" in state
    node.podnet.teardown(AttachmentKey(f"ctr-{live}", "eth0"), None, ip6=pod_ip6(14), table6=TABLE)  # no MAC: dump
    assert host_v6(node.ns) == before



def test_an_ipv6_address_something_routes_is_refused_and_left_alone(node: Node) -> None:
    nx.ip(node.ns, "-6", "route", "add", f"{pod_ip6(16)}/128", "dev", "lo")
    before = host_v6(node.ns)
    spec = node.spec(node.new_netns(), ip6=pod_ip6(16), table6=TABLE)
    with pytest.raises(PodNetworkError, match="File exists"):
        node.podnet.setup(spec)
    assert host_v6(node.ns) == before  # the other owner's route stays, nothing of ours


def test_leftover_ipv6_rules_of_an_address_are_replaced_at_add(node: Node) -> None:
    ip6 = str(pod_ip6(17))
    for rule in (("to", ip6, "lookup", "105", "pref", "512"), ("to", ip6, "lookup", "106", "pref", "512"),
                 ("from", ip6, "lookup", "105", "pref", "1536")):
        nx.ip(node.ns, "-6", "rule", "add", *rule)
    node.podnet.setup(node.spec(node.new_netns(), ip6=pod_ip6(17), table6=TABLE))
    mine = [line for line in nx.ip(node.ns, "-6", "rule").splitlines() if ip6 in line]
    assert sorted(mine) == sorted([f"512:\tfrom all to {ip6} lookup main", f"1536:\tfrom {ip6} lookup {TABLE}"])


def test_a_recreated_eni_link_gets_the_proxy_entries_of_new_pods(node: Node) -> None:
    node.podnet.setup(node.spec(node.new_netns(), ip6=pod_ip6(18)))
    old_index = nx.ip_json(node.ns, "link", "show", "eni0")[0]["ifindex"]
    # The ENI is detached and attached again: a new link (new index), same name and MAC.
    nx.ip(node.ns, "link", "del", "eni0")
    nx.ip(node.ns, "link", "add", "eni0", "address", ENI_MAC, "type", "veth", "peer", "name", "sub0",
          "netns", node.router)
    nx.ip(node.router, "link", "set", "sub0", "up")
    nx.ip(node.ns, "link", "set", "eni0", "up")
    assert nx.ip_json(node.ns, "link", "show", "eni0")[0]["ifindex"] != old_index
    spec = node.spec(node.new_netns(), ip6=pod_ip6(19))
    node.podnet.setup(spec)
    assert f"{pod_ip6(19)} dev eni0 proxy" in nx.ip(node.ns, "-6", "neigh", "show", "proxy")
    assert nx.run(["ip", "netns", "exec", node.ns, "sysctl", "-n", "net.ipv6.conf.eni0.proxy_ndp"]).strip() == "1"
    node.podnet.check(spec)
