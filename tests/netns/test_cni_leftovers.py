"""Rules and routes an agent left behind when it died between programming a pod and
recording (or freeing) its IP (issue 11 finding 8): the next use of that IP works, and
a restarted agent removes them for IPs no pod holds, never touching anything else."""

from __future__ import annotations

import subprocess

from tests.fixtures.cni import cni_env, exec_plugin, host_routes, ip_json, plugin_script, pod_rules
from vpcnet.bench.cni_node import SimNode


def ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True, timeout=30)


def leave_leftovers(sim: SimNode, addr: str, veth: str) -> None:
    """What a crashed ADD of ``addr`` leaves on the node: a veth of ours with the /32
    route, the `to` rule, and a `from` rule into another ENI's table."""
    ip(sim.node_ns, "link", "add", veth, "type", "veth", "peer", "name", veth.replace("vpc", "x", 1))
    ip(sim.node_ns, "link", "set", veth, "up")
    ip(sim.node_ns, "route", "add", f"{addr}/32", "dev", veth)
    ip(sim.node_ns, "rule", "add", "to", addr, "lookup", "main", "pref", "512")
    ip(sim.node_ns, "rule", "add", "from", addr, "lookup", "101", "pref", "1536")


def ping(netns: str, addr: str) -> int:
    return subprocess.run(
        ["ip", "netns", "exec", netns, "ping", "-c1", "-W2", addr], capture_output=True, timeout=20
    ).returncode


def test_the_next_add_of_an_ip_with_leftovers_works(cni_node: SimNode) -> None:
    plugin = plugin_script()
    first = str(cni_node.enis[0].ips[0])  # the IP the pool hands out first
    leave_leftovers(cni_node, first, "vpcdeadbeef01")
    _, netns = cni_node.new_pod()
    rc, res, _ = exec_plugin(plugin, cni_env("ADD", "next1", netns), cni_node.conf())
    assert rc == 0, res
    host_if = res["interfaces"][0]["name"]
    assert res["ips"][0]["address"] == f"{first}/32"
    # Exactly what an ADD makes for a primary-ENI IP: its route, one `to` rule.
    assert [(r["dst"], r["dev"]) for r in host_routes(cni_node.node_ns)] == [(first, host_if)]
    assert [(r.get("dst"), r["src"], r["table"]) for r in pod_rules(cni_node.node_ns)] == [(first, "all", "main")]
    ip(cni_node.node_ns, "addr", "add", f"{cni_node.enis[0].primary_ip}/16", "dev", "eni0")
    assert ping(cni_node.node_ns, first) == 0
    rc, out, _ = exec_plugin(plugin, cni_env("CHECK", "next1", netns), cni_node.conf(prevResult=res))
    assert (rc, out) == (0, None)


def test_a_restarted_agent_removes_leftovers_of_unassigned_ips_only(cni_node: SimNode) -> None:
    plugin = plugin_script()
    _, netns = cni_node.new_pod()
    rc, res, _ = exec_plugin(plugin, cni_env("ADD", "live1", netns), cni_node.conf())
    assert rc == 0
    live = res["ips"][0]["address"][:-3]
    cni_node.stop_agent(kill=True)
    free = str(cni_node.enis[0].ips[5])  # a pool IP the checkpoint says is free
    leave_leftovers(cni_node, free, "vpcdeadbeef02")
    # Not a pool IP: whoever made these, they are not the agent's to remove.
    ip(cni_node.node_ns, "rule", "add", "to", "10.99.0.5", "lookup", "main", "pref", "512")
    ip(cni_node.node_ns, "route", "add", "10.99.0.5/32", "dev", "vpcdeadbeef02")
    cni_node.start_agent()
    # Once it answers, it has cleaned up (that comes before serving).
    assert exec_plugin(plugin, cni_env("STATUS"), cni_node.conf())[0] == 0
    rules = {(r.get("dst"), r["src"], r["table"]) for r in pod_rules(cni_node.node_ns)}
    assert rules == {(live, "all", "main"), ("10.99.0.5", "all", "main")}
    routes = {(r["dst"], r["dev"]) for r in host_routes(cni_node.node_ns)}
    assert routes == {(live, res["interfaces"][0]["name"])}
    assert [r["dev"] for r in ip_json(cni_node.node_ns, "route", "show", "10.99.0.5/32")] == ["vpcdeadbeef02"]
    rc, out, _ = exec_plugin(plugin, cni_env("CHECK", "live1", netns), cni_node.conf(prevResult=res))
    assert (rc, out) == (0, None)
