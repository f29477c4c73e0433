"""The simulated VPC follows the EC2 emulator: links hot-plugged by MAC, the router's
static neighbours, reachability through the router, clean teardown by prefix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.netns import SimEnv, wait_for
from vpcnet_sim import netns as nx
from vpcnet_sim.ec2 import Ec2Emulator
from vpcnet_sim.vpc import SimVpc, teardown_prefix

pytestmark = pytest.mark.timeout(120)


def links(ns: str) -> dict[str, dict[str, object]]:
    return {li["ifname"]: li for li in nx.ip_json(ns, "link", "show")}


def permanent_neighbours(sim_env: SimEnv) -> dict[str, str]:
    return {
        n["dst"]: n["lladdr"]
        for n in nx.ip_json(sim_env.vpc.router, "neigh", "show", "nud", "permanent")
        if "lladdr" in n
    }


def test_node_namespace_is_a_booted_instance(sim_env: SimEnv) -> None:
    a = sim_env.add_node("node-a", subnet_index=1)
    view = a.view()
    eth0 = links(a.netns)["eth0"]
    assert eth0["address"] == view["enis"][0]["mac"]
    assert eth0["mtu"] == 9001
    addrs = nx.ip(a.netns, "-4", "-o", "addr", "show", "dev", "eth0")
    assert f"{view['private_ip']}/20" in addrs
    assert "default via 10.0.16.1 dev eth0" in nx.ip(a.netns, "route")
    assert nx.ping(a.netns, "10.0.16.1"), "the subnet gateway answers on the router"
    assert nx.ping(a.netns, sim_env.vpc.outside_host_ip), "the outside is routed"


def test_fabric_plugs_and_unplugs_enis_and_keeps_neighbours(sim_env: SimEnv) -> None:
    a = sim_env.add_node("node-a", subnet_index=0)
    b = sim_env.add_node("node-b", subnet_index=0)
    sim_env.vpc.start_fabric(0.05)
    eni_id = a.attach_eni(subnet_index=1, device_index=1, ip_count=3)
    eni = wait_for(lambda: a.eni_view(1) if a.eni_view(1)["status"] == "attached" else None, 10, "attach")
    eth1 = wait_for(lambda: links(a.netns).get("eth1"), 10, "eth1 hot-plugged into node-a")
    assert eth1["address"] == eni["mac"]
    assert "UP" not in eth1["flags"], "a hot-plugged NIC comes up down: the agent's job"
    neigh = wait_for(
        lambda: (n := permanent_neighbours(sim_env)).get(eni["secondary_ips"][0]) and n, 10, "neighbours"
    )
    for ip in [eni["primary_ip"], *eni["secondary_ips"]]:
        assert neigh[ip] == eni["mac"]
    assert neigh[a.primary_ip] == a.view()["enis"][0]["mac"]
    assert neigh[b.primary_ip] == b.view()["enis"][0]["mac"]

    # More IPs on the ENI -> more neighbours; unassigned ones go away.
    a.assign_ips(1, 2)
    wait_for(
        lambda: set(a.eni_view(1)["secondary_ips"]) <= set(permanent_neighbours(sim_env)),
        10,
        "neighbours for the new IPs",
    )
    gone = a.eni_view(1)["secondary_ips"][0]
    sim_env.ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=[gone])
    wait_for(lambda: gone not in permanent_neighbours(sim_env), 10, "the unassigned IP's neighbour removed")

    sim_env.ec2.detach_network_interface(AttachmentId=a.eni_view(1)["attachment_id"])
    wait_for(lambda: "eth1" not in links(a.netns), 10, "eth1 unplugged")
    wait_for(lambda: eni["primary_ip"] not in permanent_neighbours(sim_env), 10, "its neighbours removed")
    assert sim_env.vpc.sync_errors == 0


def test_nodes_of_one_subnet_reach_each_other_through_proxy_arp(sim_env: SimEnv) -> None:
    a = sim_env.add_node("node-a", subnet_index=0)
    b = sim_env.add_node("node-b", subnet_index=0)
    c = sim_env.add_node("node-c", subnet_index=1)
    assert nx.ping(a.netns, b.primary_ip)
    assert nx.ping(a.netns, c.primary_ip), "across subnets via the router"
    # The VPC does not send ICMP redirects (hosts must keep using the gateway).
    assert nx.run(["ip", "netns", "exec", sim_env.vpc.router, "sysctl", "-n",
                   "net.ipv4.conf.br0.send_redirects"]).strip() == "0"


@pytest.fixture
def crash_prefix() -> Iterator[str]:
    prefix = "vpct2-crash-"
    yield prefix
    teardown_prefix(prefix)


def test_teardown_by_prefix_after_a_crash(ec2_emulator: Ec2Emulator, crash_prefix: str) -> None:
    world = ec2_emulator.bootstrap_vpc(cidr="10.0.0.0/16", subnets=("10.0.0.0/20",), azs=("us-east-1a",))
    iid = ec2_emulator.run_instance(instance_type="t3.nano", subnet_id=world.subnet_ids[0], name="x")
    vpc = SimVpc(crash_prefix, ec2_emulator.endpoint_url, "10.0.0.0/16", ("10.0.0.0/20",))
    vpc.setup()
    vpc.add_node(iid, "x")
    assert len(nx.netns_list(crash_prefix)) == 3
    vpc.stop_fabric()  # the object is "lost" here, as in a crashed test process
    removed = teardown_prefix(crash_prefix)
    assert sorted(removed) == [f"{crash_prefix}n-x", f"{crash_prefix}out", f"{crash_prefix}vpc"]
    assert nx.netns_list(crash_prefix) == []
    assert teardown_prefix(crash_prefix) == []  # idempotent
    vpc.teardown()  # and the object's own teardown after that is harmless
