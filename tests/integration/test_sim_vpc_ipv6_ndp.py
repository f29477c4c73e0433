"""The simulated VPC routes IPv6 to addresses of /80 prefixes that nodes answer for by
NDP proxy, with hand-made namespaces (no agent, no EC2): the router resolves such an
address with NDP on the subnet, only the node holding it answers, and the router sends
no redirects. The nodes and pods here are set up the way the design's dataplane does it
(design points 5 and 6)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from vpcnet_sim import netns as nx
from vpcnet_sim.vpc import ROUTER_LINK_LOCAL, SimVpc

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]

SUBNETS = ("10.0.0.0/20", "10.0.16.0/20")
SUBNETS6 = ("2001:db8:0:1::/64", "2001:db8:0:2::/64")
# Nothing listens on it: the router's set-up never asks EC2 anything.
UNUSED_ADMIN_URL = "http://127.0.0.1:9"


@dataclass(frozen=True)
class HandNode:
    netns: str
    mac: str
    ip6: str


def _mac() -> str:
    return "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))


def hand_node(vpc: SimVpc, name: str, bridge: str, ip6: str, *, forwarding: bool = True) -> HandNode:
    """A booted instance plugged into ``bridge``: ``ip6``/128 on eth0 and the router's
    link-local address as its default gateway; with ``forwarding`` it can proxy NDP."""
    ns = f"{vpc.prefix}h-{name}"
    nx.netns_add(ns)
    mac = _mac()
    port = f"h{name}"
    nx.ip(vpc.router, "link", "add", port, "type", "veth", "peer", "name", "eth0",
          "address", mac, "netns", ns)
    nx.ip(vpc.router, "link", "set", port, "master", bridge, "up")
    nx.ip_batch(ns, [
        "link set eth0 up",
        f"address add {ip6}/128 dev eth0 nodad",
        f"route add default via {ROUTER_LINK_LOCAL} dev eth0",
    ])
    if forwarding:
        nx.sysctl(ns, {
            "net/ipv6/conf/all/forwarding": "1",
            "net/ipv6/conf/eth0/proxy_ndp": "1",
            "net/ipv6/neigh/eth0/proxy_delay": "0",
        })
    return HandNode(ns, mac, ip6)


def hand_pod(node: HandNode, name: str, ip6: str) -> str:
    """A pod on ``node`` with an address of the node's /80: its /128 behind a veth whose
    host end is fe80::1, a host route, and the node's NDP proxy entry on eth0."""
    pod = f"{node.netns}-{name}"
    nx.netns_add(pod)
    veth = f"v{name}"
    nx.ip(node.netns, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", pod)
    nx.ip_batch(node.netns, [
        f"address add {ROUTER_LINK_LOCAL}/64 dev {veth} nodad",
        f"link set {veth} up",
        f"route add {ip6}/128 dev {veth}",
        f"neigh add proxy {ip6} dev eth0",
    ])
    nx.ip_batch(pod, [
        "link set eth0 up",
        f"address add {ip6}/128 dev eth0 nodad",
        f"route add default via {ROUTER_LINK_LOCAL} dev eth0",
    ])
    return pod


def neighbour(ns: str, address: str, dev: str) -> dict[str, object]:
    for n in nx.ip_json(ns, "-6", "neigh", "show", "dev", dev):
        if n.get("dst") == address:
            return n
    return {}


@pytest.fixture
def vpc6(netns_prefix: str) -> Iterator[SimVpc]:
    vpc = SimVpc(netns_prefix, UNUSED_ADMIN_URL, "10.0.0.0/16", SUBNETS, SUBNETS6)
    vpc.setup()
    try:
        yield vpc
    finally:
        vpc.teardown()


def test_router_is_an_ipv6_router_on_every_subnet(vpc6: SimVpc) -> None:
    for i, cidr in enumerate(SUBNETS6):
        br = f"br{i}"
        addrs = nx.ip_json(vpc6.router, "-6", "addr", "show", "dev", br)[0]["addr_info"]
        assert ("fe80::1", 64) in {(a["local"], a["prefixlen"]) for a in addrs}
        routes = nx.ip_json(vpc6.router, "-6", "route", "show", "dev", br)
        assert cidr in {r["dst"] for r in routes}, routes
    assert nx.run(["ip", "netns", "exec", vpc6.router, "sysctl", "-n",
                   "net.ipv6.conf.all.forwarding"]).strip() == "1"
    # The router proxies nothing: an address of a /80 is answered for by its node alone.
    assert nx.ip_json(vpc6.router, "-6", "neigh", "show", "proxy") == []
    out = nx.ip_json(vpc6.outside, "-6", "addr", "show", "dev", "eth0")[0]["addr_info"]
    assert vpc6.outside_host_ip6 in {a["local"] for a in out}


def test_a_proxied_pod_address_is_reached_across_nodes_subnets_and_from_outside(vpc6: SimVpc) -> None:
    a = hand_node(vpc6, "a", "br0", "2001:db8:0:1::a")
    b = hand_node(vpc6, "b", "br0", "2001:db8:0:1::b")
    c = hand_node(vpc6, "c", "br1", "2001:db8:0:2::c")
    pod_a_ip = "2001:db8:0:1:a::5"  # in a's /80 2001:db8:0:1:a::/80
    pod_a = hand_pod(a, "pa", pod_a_ip)
    pod_c = hand_pod(c, "pc", "2001:db8:0:2:c::7")

    assert nx.ping(b.netns, pod_a_ip), "a node of the same subnet reaches the pod via the router"
    assert nx.ping(c.netns, pod_a_ip), "a node of another subnet reaches it"
    assert nx.ping(pod_c, pod_a_ip), "pod to pod across subnets"
    assert nx.ping(vpc6.outside, pod_a_ip), "the outside host reaches the pod (no NAT on IPv6)"
    seen = nx.source_seen_by(pod_a, vpc6.outside_host_ip6, vpc6.outside_echo_port)
    assert seen == pod_a_ip, "the outside sees the pod's own address"

    # The router learnt the pod address by NDP (no static entry), from a's MAC.
    learnt = neighbour(vpc6.router, pod_a_ip, "br0")
    assert learnt.get("lladdr") == a.mac, learnt
    assert "PERMANENT" not in learnt.get("state", []), learnt


def test_an_address_of_a_80_nobody_proxies_gets_no_answer(vpc6: SimVpc) -> None:
    a = hand_node(vpc6, "a", "br0", "2001:db8:0:1::a")
    b = hand_node(vpc6, "b", "br0", "2001:db8:0:1::b")
    hand_pod(a, "pa", "2001:db8:0:1:a::5")
    unclaimed = "2001:db8:0:1:a::6"  # in a's /80, but no pod (and no proxy entry) has it
    assert nx.ping(b.netns, "2001:db8:0:1:a::5"), "its neighbour in the /80 is routed"
    assert not nx.ping(b.netns, unclaimed, count=1, timeout=2)
    state = neighbour(vpc6.router, unclaimed, "br0")
    assert "lladdr" not in state, f"someone answered for an address nobody holds: {state}"


def test_a_node_resolving_on_link_gets_the_holding_nodes_mac_not_the_routers(vpc6: SimVpc) -> None:
    # A host that treats the /64 as on-link (AWS's RA says so) asks the subnet directly:
    # the node holding the pod must be the only one to answer, not the router.
    a = hand_node(vpc6, "a", "br0", "2001:db8:0:1::a")
    b = hand_node(vpc6, "b", "br0", "2001:db8:0:1::b")
    pod_ip = "2001:db8:0:1:a::5"
    hand_pod(a, "pa", pod_ip)
    nx.ip(b.netns, "-6", "route", "add", SUBNETS6[0], "dev", "eth0")
    assert nx.ping(b.netns, pod_ip)
    assert neighbour(b.netns, pod_ip, "eth0").get("lladdr") == a.mac


def test_the_router_sends_no_redirects(vpc6: SimVpc) -> None:
    # A plain host (no forwarding: it would accept a redirect) reaching a pod on another
    # node of its own subnet keeps going through the router.
    a = hand_node(vpc6, "a", "br0", "2001:db8:0:1::a")
    host = hand_node(vpc6, "h", "br0", "2001:db8:0:1::99", forwarding=False)
    pod_ip = "2001:db8:0:1:a::5"
    hand_pod(a, "pa", pod_ip)
    assert nx.ping(host.netns, pod_ip, count=3)
    route = nx.ip_json(host.netns, "-6", "route", "get", pod_ip)[0]
    assert route.get("gateway") == str(ROUTER_LINK_LOCAL), route


def test_subnets_ipv6_are_validated() -> None:
    with pytest.raises(ValueError, match="not a /64"):
        SimVpc("vpct2-x-", UNUSED_ADMIN_URL, "10.0.0.0/16", SUBNETS, ("2001:db8::/56",))
    with pytest.raises(ValueError, match="two subnets"):
        SimVpc("vpct2-x-", UNUSED_ADMIN_URL, "10.0.0.0/16", SUBNETS, (SUBNETS6[0], SUBNETS6[0]))
    with pytest.raises(ValueError, match="3 IPv6 CIDRs for 2 subnets"):
        SimVpc("vpct2-x-", UNUSED_ADMIN_URL, "10.0.0.0/16", SUBNETS, (*SUBNETS6, None))
