"""hostPorts on dual-stack and ipv6-only pods: the real agent on a node of the dual-stack
simulated VPC, the conflist vpcnet-cni -> Debian's reference portmap exec'd in the node's
namespace as a runtime on the node does, with the ``portMappings`` capability arg.

The ADD makes portmap DNAT the host port to each of the pod's addresses (iptables for the
IPv4, ip6tables for the IPv6); a TCP connection to the node's address and host port, over
each family, from another node of the VPC (PREROUTING) and from the node itself (OUTPUT),
reaches the pod's listener, which sees the client's own address (no SNAT); vpcnet-cni's
CHECK passes on the chain's result (Debian's portmap fails its own CHECK for any pod);
DEL removes portmap's rules and the pod's interfaces, after which the host port answers
no more; a second DEL succeeds.
"""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import replace

import pytest

from tests.fixtures.netns import REFERENCE_PLUGINS, AgentProcess, SimEnv, SimNode
from vpcnet.state.keys import ClusterKeys
from vpcnet_sim import netns as nx
from vpcnet_sim.runtime import Pod, PodRuntime

pytestmark = pytest.mark.timeout(240)

HOST_PORT = 18080
CONTAINER_PORT = 8080
PORT_MAPPINGS = [{"hostPort": HOST_PORT, "containerPort": CONTAINER_PORT, "protocol": "tcp"}]


def delegate_80(node: SimNode) -> ipaddress.IPv6Network:
    """AssignIpv6Addresses(Ipv6PrefixCount=1) on the primary ENI, as the control plane
    plans for an ipv6/dual node; the simulated VPC learns it on its next sync."""
    (prefix,) = node.env.ec2.assign_ipv6_addresses(
        NetworkInterfaceId=node.eni_view(0)["eni_id"], Ipv6PrefixCount=1
    )["AssignedIpv6Prefixes"]
    return ipaddress.IPv6Network(prefix)


def publish(node: SimNode, family: str) -> int:
    """Write ``enis`` + ``node`` for a new generation as the control plane does for an
    ipv6/dual node: the primary ENI's /80s and subnet /64 from EC2, and ``ip_family``."""
    node.env.vpc.sync()
    node.generation += 1
    primary = node.eni_view(0)
    records = [
        replace(
            r,
            ipv6_prefixes=tuple(ipaddress.IPv6Network(p) for p in primary["ipv6_prefixes"]),
            subnet_ipv6_cidr=ipaddress.IPv6Network(primary["subnet_ipv6_cidr"]),
        )
        if r.device_index == 0
        else r
        for r in node.records()
    ]
    k = node.keys
    client = node.env.redis()
    try:
        pipe = client.pipeline(transaction=True)
        pipe.delete(k.enis)
        pipe.hset(k.enis, mapping={r.eni_id: r.to_json() for r in records})
        pipe.hset(k.node, mapping={
            "instance_id": node.instance_id, "instance_type": "m5.large",
            "primary_ip": node.primary_ip, "phase": "provisioned", "mode": "warm",
            "ip_family": family, "error": "", "no_growth": "",
            "generation": node.generation, "updated": time.time(),
        })
        pipe.sadd(ClusterKeys(node.env.cluster).nodes, node.name)
        pipe.publish(k.changed_channel, "enis")
        pipe.execute()
    finally:
        client.close()
    return node.generation


def primary_ip6(node: SimNode) -> str:
    """The IPv6 address the simulated VPC booted the node with (its primary ENI's)."""
    return str(node.eni_view(0)["ipv6_addresses"][0])


def portmap_agent(sim_env: SimEnv, node: SimNode) -> AgentProcess:
    """The node's agent with Debian's portmap chained (installed in the CNI bin dir)."""
    agent = sim_env.agent(node, VPCNET_AGENT_CHAINED_PLUGINS="portmap")
    agent.bin_dir.mkdir(parents=True, exist_ok=True)
    (agent.bin_dir / "portmap").symlink_to(REFERENCE_PLUGINS / "portmap")
    return agent.start()


def nat_rules(node: SimNode, tool: str) -> str:
    return nx.run(["ip", "netns", "exec", node.netns, tool, "-t", "nat", "-S"])


def answer_via_host_port(client_ns: str, host_ip: str) -> str:
    """Connect from ``client_ns`` to ``host_ip``:HOST_PORT; the client address the pod's
    listener saw (an IPv4 client shows as itself, not as ::ffff:...)."""
    seen = ipaddress.ip_address(nx.source_seen_by(client_ns, host_ip, HOST_PORT, timeout=5))
    mapped = seen.ipv4_mapped if isinstance(seen, ipaddress.IPv6Address) else None
    return str(mapped or seen)


def host_port_refuses(client_ns: str, host_ip: str) -> bool:
    """True when nothing answers on ``host_ip``:HOST_PORT (no mapping left)."""
    try:
        nx.source_seen_by(client_ns, host_ip, HOST_PORT, timeout=3)
    except OSError:  # refused (the node's own RST) or timed out
        return True
    return False


def links(netns: str) -> set[str]:
    return {li["ifname"] for li in nx.ip_json(netns, "link", "show")}


@pytest.mark.parametrize("family", ["dual", "ipv6"])
def test_host_port_reaches_the_pod_over_each_of_its_families(sim_env: SimEnv, family: str) -> None:
    node = sim_env.add_node("node-a", subnet_index=0)
    client = sim_env.add_node("node-b", subnet_index=0)  # a peer in the VPC, no agent
    if family == "dual":
        node.assign_ips(0, 2)
    prefix = delegate_80(node)
    agent = portmap_agent(sim_env, node)
    agent.wait_ready(publish(node, family))
    conf = json.loads(agent.conflist_path.read_text())
    assert [p["type"] for p in conf["plugins"]] == ["vpcnet-cni", "portmap"]

    rt = PodRuntime(agent.conflist_path, [agent.bin_dir, REFERENCE_PLUGINS],
                    f"{sim_env.prefix}p-", host_netns=node.netns)
    pod: Pod = sim_env.new_pod(rt, "web")
    pod.capability_args = {"portMappings": PORT_MAPPINGS}
    rt.add(pod)
    assert ipaddress.IPv6Address(pod.ip6) in prefix
    assert bool(pod.ip4) == (family == "dual"), pod.result

    # portmap's DNAT, one table per family of the pod.
    nat4, nat6 = nat_rules(node, "iptables"), nat_rules(node, "ip6tables")
    assert f"--to-destination [{pod.ip6}]:{CONTAINER_PORT}" in nat6, nat6
    assert pod.container_id in nat6  # portmap tags its rules with the container id
    if family == "dual":
        assert f"--to-destination {pod.ip4}:{CONTAINER_PORT}" in nat4, nat4
    else:
        assert f"--dport {HOST_PORT}" not in nat4, nat4  # nothing mapped for a family it lacks

    listener = nx.EchoServer(pod.netns_name, "::", CONTAINER_PORT)  # both families
    listener.start()
    try:
        node6, client6 = primary_ip6(node), primary_ip6(client)
        # From a peer (the DNAT in PREROUTING) and from the node itself (in OUTPUT); the
        # pod sees each client's own address: portmap SNATs only localhost and hairpins.
        assert answer_via_host_port(client.netns, node6) == client6
        assert answer_via_host_port(node.netns, node6) == node6
        if family == "dual":
            assert answer_via_host_port(client.netns, node.primary_ip) == client.primary_ip
            assert answer_via_host_port(node.netns, node.primary_ip) == node.primary_ip
        else:
            assert host_port_refuses(client.netns, node.primary_ip)

        # CHECK: vpcnet-cni's, on the whole chain's result (both families checked). Not
        # portmap's: Debian's 1.1.1 checks each address's rules in iptables *and*
        # ip6tables, so its CHECK fails for every pod whatever the first plugin did
        # ("could not check ipv6 dnat" on a dual pod's IPv4 rules, "could not check ipv4
        # dnat: chain ... not found" on an ipv6-only pod; IPv4 pods: test_cni_node.py).
        conflist = rt.load_conflist()
        assert conflist["plugins"][0]["type"] == "vpcnet-cni"
        rt.exec_plugin(conflist, conflist["plugins"][0], "CHECK", pod, pod.result)

        host_veths = {i["name"] for i in pod.result["interfaces"] if not i.get("sandbox")}
        assert host_veths and host_veths <= links(node.netns)
        rt.delete(pod)
        nat4, nat6 = nat_rules(node, "iptables"), nat_rules(node, "ip6tables")
        for rules in (nat4, nat6):
            assert f"--dport {HOST_PORT}" not in rules and pod.container_id[:8] not in rules, rules
        assert pod.ip6 not in nat6 and (not pod.ip4 or pod.ip4 not in nat4)
        assert pod.ifname not in links(pod.netns_name)  # the pod's interface is gone
        assert not host_veths & links(node.netns)  # and its host side
        assert host_port_refuses(client.netns, node6)
        rt.delete(pod)  # a second DEL succeeds (the runtime retries DELs)
    finally:
        listener.stop()
