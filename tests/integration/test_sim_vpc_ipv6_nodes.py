"""The simulated VPC over the EC2 emulator's IPv6 (dual-stack subnets): nodes boot with
their primary ENI's IPv6 address, the router learns the subnets' /64s from EC2, holds
static neighbours for assigned IPv6 addresses but none for a delegated /80, whose
addresses the node answers for by NDP proxy (and forgets them once the /80 is released)."""

from __future__ import annotations

import ipaddress

import pytest

from tests.fixtures.netns import SimEnv, wait_for
from vpcnet_sim import netns as nx

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]


def primary_ipv6(view: dict[str, object]) -> str:
    enis = view["enis"]
    assert isinstance(enis, list)
    (address, *_) = next(e for e in enis if e["device_index"] == 0)["ipv6_addresses"]
    return str(address)


def router_neighbours(sim_env: SimEnv) -> dict[str, dict[str, object]]:
    return {n["dst"]: n for n in nx.ip_json(sim_env.vpc.router, "-6", "neigh", "show") if "dst" in n}


def test_a_dual_stack_node_boots_with_its_ipv6_and_reaches_nodes_and_outside(sim_env: SimEnv) -> None:
    a = sim_env.add_node("node-a", subnet_index=0)
    b = sim_env.add_node("node-b", subnet_index=0)
    c = sim_env.add_node("node-c", subnet_index=1)
    a6, b6, c6 = (primary_ipv6(n.view()) for n in (a, b, c))
    eth0 = nx.ip_json(a.netns, "-6", "addr", "show", "dev", "eth0")[0]["addr_info"]
    assert (a6, 128) in {(x["local"], x["prefixlen"]) for x in eth0}
    assert "default via fe80::1 dev eth0" in nx.ip(a.netns, "-6", "route")

    # The router learnt both subnets' /64s from the ENIs' views (the fixture gave none).
    for node, bridge in ((a, "br0"), (c, "br1")):
        cidr = node.eni_view(0)["subnet_ipv6_cidr"]
        assert ipaddress.IPv6Address(primary_ipv6(node.view())) in ipaddress.IPv6Network(cidr)
        routes = nx.ip_json(sim_env.vpc.router, "-6", "route", "show", "dev", bridge)
        assert cidr in {r["dst"] for r in routes}

    assert nx.ping(a.netns, b6), "same subnet, through the router"
    assert nx.ping(a.netns, c6), "across subnets"
    assert nx.source_seen_by(a.netns, sim_env.vpc.outside_host_ip6, sim_env.vpc.outside_echo_port) == a6
    neigh = router_neighbours(sim_env)
    assert neigh[a6]["lladdr"] == a.eni_view(0)["mac"] and "PERMANENT" in neigh[a6]["state"]


def test_a_delegated_80_is_resolved_by_ndp_from_the_node(sim_env: SimEnv) -> None:
    a = sim_env.add_node("node-a", subnet_index=0)
    b = sim_env.add_node("node-b", subnet_index=0)
    eni = a.eni_view(0)
    (prefix,) = sim_env.ec2.assign_ipv6_addresses(
        NetworkInterfaceId=eni["eni_id"], Ipv6PrefixCount=1
    )["AssignedIpv6Prefixes"]
    sim_env.vpc.sync()
    net = ipaddress.IPv6Network(prefix)
    assert net.prefixlen == 80
    assert not [d for d, n in router_neighbours(sim_env).items()
                if ipaddress.IPv6Address(d) in net], "no static entry for a /80's addresses"

    # As the agent does for a pod: proxy the address on the ENI's link (here the address
    # sits on the node's lo instead of behind a pod veth).
    pod_ip = str(net.network_address + 5)
    nx.ip(a.netns, "address", "add", f"{pod_ip}/128", "dev", "lo")
    nx.sysctl(a.netns, {
        "net/ipv6/conf/all/forwarding": "1",
        "net/ipv6/conf/eth0/proxy_ndp": "1",
        "net/ipv6/neigh/eth0/proxy_delay": "0",
    })
    nx.ip(a.netns, "-6", "neigh", "add", "proxy", pod_ip, "dev", "eth0")
    assert nx.ping(b.netns, pod_ip)
    assert nx.ping(sim_env.vpc.outside, pod_ip)
    learnt = wait_for(lambda: router_neighbours(sim_env).get(pod_ip), 5, "the router's entry")
    assert learnt["lladdr"] == eni["mac"] and "PERMANENT" not in learnt["state"], learnt
    sim_env.vpc.sync()  # the fabric's sync leaves NDP-learnt entries alone
    assert nx.ping(b.netns, pod_ip, count=1)

    # Released: the router forgets what it learnt for the /80 at the next sync.
    sim_env.ec2.unassign_ipv6_addresses(NetworkInterfaceId=eni["eni_id"], Ipv6Prefixes=[prefix])
    sim_env.vpc.sync()
    assert pod_ip not in router_neighbours(sim_env)
