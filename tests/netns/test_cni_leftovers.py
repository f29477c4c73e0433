"""What an agent leaves when it forgets a pod it programmed (it died between programming
the pod and writing its checkpoint; issue 11 finding 8): the forgotten sandbox keeps its
IP while its interface lives, the next use of that IP works once the runtime's DEL took
the interface, and a restarted agent removes leftover rules of IPs no pod holds."""

from __future__ import annotations

import subprocess
from typing import Any

from tests.fixtures.cni import (
    cni_env,
    exec_plugin,
    host_routes,
    ip_json,
    links,
    plugin_script,
    pod_rules,
    wait_for,
)
from vpcnet.agent.ipam import AttachmentKey
from vpcnet.agent.podnet import host_ifname
from vpcnet_sim.bench.cni_node import SimNode


def ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True, timeout=30)


def forgotten_pod(sim: SimNode, cid: str, addr: str) -> tuple[str, str]:
    """What the agent programs for ``cid`` with ``addr`` (a veth into a real sandbox, the
    /32 route, the `to` rule) plus `from` rules into ENI 1's and ENI 2's tables (the IP
    moved between ENIs), all without an allocation: (sandbox netns path, host veth)."""
    _, netns = sim.new_pod()
    veth = host_ifname("vpc", AttachmentKey(cid, "eth0"))
    ip(sim.node_ns, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns.rsplit("/", 1)[1])
    ip(sim.node_ns, "link", "set", veth, "up")
    ip(sim.node_ns, "route", "add", f"{addr}/32", "dev", veth)
    ip(sim.node_ns, "rule", "add", "to", addr, "lookup", "main", "pref", "512")
    ip(sim.node_ns, "rule", "add", "from", addr, "lookup", "101", "pref", "1536")
    ip(sim.node_ns, "rule", "add", "from", addr, "lookup", "102", "pref", "1536")
    return netns, veth


def rules(sim: SimNode) -> set[tuple[Any, Any, Any]]:
    return {(r.get("dst", "all"), r.get("src", "all"), r["table"]) for r in pod_rules(sim.node_ns)}


def ping(netns: str, addr: str) -> int:
    return subprocess.run(
        ["ip", "netns", "exec", netns, "ping", "-c1", "-W2", addr], capture_output=True, timeout=20
    ).returncode


def test_the_next_use_of_a_forgotten_pods_ip_works_once_its_interface_is_gone(make_cni_node: Any) -> None:
    sim = make_cni_node(5, cooldown_seconds=0)
    plugin = plugin_script()
    first = str(sim.enis[0].ips[0])  # the IP the pool hands out first
    old_netns, old_veth = forgotten_pod(sim, "old1", first)
    left = rules(sim)
    assert left == {(first, "all", "main"), ("all", first, "101"), ("all", first, "102")}
    # While the forgotten sandbox's interface routes the IP, it outranks the IPAM:
    # the ADD that draws it fails and touches nothing of the sandbox's.
    _, netns2 = sim.new_pod()
    rc, err, _ = exec_plugin(plugin, cni_env("ADD", "new1", netns2), sim.conf())
    assert rc == 1 and err["code"] == 101 and "File exists" in err["details"], err
    assert [(r["dst"], r["dev"]) for r in host_routes(sim.node_ns)] == [(first, old_veth)]
    assert rules(sim) == left
    # The runtime's DEL of the forgotten attachment (which follows its failed ADD):
    # the agent holds no IP for it, so only the veth goes; its rules stay behind.
    rc, out, _ = exec_plugin(plugin, cni_env("DEL", "old1", old_netns), sim.conf())
    assert (rc, out) == (0, None)
    wait_for(lambda: old_veth not in links(sim.node_ns), "the forgotten veth destroyed")
    assert host_routes(sim.node_ns) == [] and rules(sim) == left
    # The next use of the IP: exactly what an ADD makes for a primary-ENI IP.
    _, netns3 = sim.new_pod()
    rc, res, _ = exec_plugin(plugin, cni_env("ADD", "new2", netns3), sim.conf())
    assert rc == 0, res
    assert res["ips"][0]["address"] == f"{first}/32"
    assert [(r["dst"], r["dev"]) for r in host_routes(sim.node_ns)] == [(first, res["interfaces"][0]["name"])]
    assert rules(sim) == {(first, "all", "main")}  # the stale `from ... lookup 101/102` are gone
    ip(sim.node_ns, "addr", "add", f"{sim.enis[0].primary_ip}/16", "dev", "eni0")
    assert ping(sim.node_ns, first) == 0
    rc, out, _ = exec_plugin(plugin, cni_env("CHECK", "new2", netns3), sim.conf(prevResult=res))
    assert (rc, out) == (0, None)


def test_a_restarted_agent_removes_leftover_rules_of_unassigned_unrouted_ips_only(cni_node: SimNode) -> None:
    plugin = plugin_script()
    _, netns = cni_node.new_pod()
    rc, res, _ = exec_plugin(plugin, cni_env("ADD", "live1", netns), cni_node.conf())
    assert rc == 0
    live = res["ips"][0]["address"][:-3]
    cni_node.stop_agent(kill=True)
    leftover = str(cni_node.enis[0].ips[5])  # free in the checkpoint, nothing routes it
    ip(cni_node.node_ns, "rule", "add", "to", leftover, "lookup", "main", "pref", "512")
    ip(cni_node.node_ns, "rule", "add", "from", leftover, "lookup", "101", "pref", "1536")
    routed = str(cni_node.enis[0].ips[6])  # free in the checkpoint, but a sandbox routes it
    _, forgotten_veth = forgotten_pod(cni_node, "old2", routed)
    # Not a pool IP: whoever made this rule, it is not the agent's to remove.
    ip(cni_node.node_ns, "rule", "add", "to", "10.99.0.5", "lookup", "main", "pref", "512")
    cni_node.start_agent()
    # Once it answers, it has cleaned up (that comes before serving).
    assert exec_plugin(plugin, cni_env("STATUS"), cni_node.conf())[0] == 0
    assert rules(cni_node) == {
        (live, "all", "main"),
        (routed, "all", "main"), ("all", routed, "101"), ("all", routed, "102"),
        ("10.99.0.5", "all", "main"),
    }
    assert [r["dev"] for r in ip_json(cni_node.node_ns, "route", "show", f"{routed}/32")] == [forgotten_veth]
    rc, out, _ = exec_plugin(plugin, cni_env("CHECK", "live1", netns), cni_node.conf(prevResult=res))
    assert (rc, out) == (0, None)
