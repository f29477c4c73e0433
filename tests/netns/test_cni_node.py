"""The node under load and under failure: concurrency, rollback, a gone namespace, a
dead agent, a restart, readiness, GC and a chain with the reference portmap plugin."""

from __future__ import annotations

import ipaddress
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.fixtures.cni import (
    cni_env,
    exec_plugin,
    host_routes,
    links,
    plugin_script,
    pod_rules,
    wait_for,
)
from vpcnet_sim.bench.cni_node import SimNode


def _veths(sim: SimNode) -> set[str]:
    return {name for name in links(sim.node_ns) if name.startswith("vpc")}


def test_200_concurrent_adds_then_dels(make_cni_node: Any) -> None:
    sim = make_cni_node(200)
    plugin = plugin_script()
    pods = [sim.new_pod()[1] for _ in range(200)]

    def add(i: int) -> tuple[int, Any]:
        rc, res, _ = exec_plugin(plugin, cni_env("ADD", f"c{i:03d}", pods[i]), sim.conf())
        return rc, res

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(add, range(200)))
    assert [rc for rc, _ in results] == [0] * 200, [r for rc, r in results if rc][:3]
    ips = [ipaddress.IPv4Address(res["ips"][0]["address"].split("/")[0]) for _, res in results]
    assert len(set(ips)) == 200 and set(ips) <= sim.pool_ips()
    ckpt = sim.checkpoint()
    assert sorted(ipaddress.IPv4Address(a["ip"]) for a in ckpt["allocations"]) == sorted(ips)
    assert {a["container_id"] for a in ckpt["allocations"]} == {f"c{i:03d}" for i in range(200)}
    assert len(_veths(sim)) == 200 and len(host_routes(sim.node_ns)) == 200

    def delete(i: int) -> int:
        return exec_plugin(plugin, cni_env("DEL", f"c{i:03d}", pods[i]), sim.conf())[0]

    with ThreadPoolExecutor(32) as pool:
        assert list(pool.map(delete, range(200))) == [0] * 200
    ckpt = sim.checkpoint()
    assert ckpt["allocations"] == []
    assert sorted(ipaddress.IPv4Address(ip) for ip, _ in ckpt["cooldown"]) == sorted(ips)
    wait_for(lambda: not _veths(sim), "all host veths destroyed")
    assert pod_rules(sim.node_ns) == [] and host_routes(sim.node_ns) == []
    # The pool is exhausted while all 200+ IPs cool down... except the spare ones.
    spare = len(sim.pool_ips()) - 200
    extra = [sim.new_pod()[1] for _ in range(spare + 1)]
    # A budget shorter than the cooldown: no IP can come in time, so the last one fails at
    # once (with the default budget it would wait for the first IP to leave the cooldown).
    short = sim.conf(timeoutSeconds=8)
    for i, netns in enumerate(extra):
        rc, res, _ = exec_plugin(plugin, cni_env("ADD", f"x{i}", netns), short)
        if i < spare:
            assert rc == 0 and ipaddress.IPv4Address(res["ips"][0]["address"][:-3]) not in ips
        else:
            assert rc == 1 and res["code"] == 11 and res["msg"] == "no free IP on this node"


def test_failed_add_rolls_back_everything(cni_node: SimNode) -> None:
    plugin = plugin_script()
    # Someone else routes the IP the pool hands out first: the host route must fail.
    first = str(cni_node.enis[0].ips[0])
    subprocess.run(["ip", "-n", cni_node.node_ns, "route", "add", f"{first}/32", "dev", "eni0r"], check=True)
    pod, netns = cni_node.new_pod()
    rc, err, _ = exec_plugin(plugin, cni_env("ADD", "rb1", netns), cni_node.conf())
    assert rc == 1 and err["code"] == 101 and "File exists" in err["details"]
    assert _veths(cni_node) == set() and "eth0" not in links(pod)
    assert pod_rules(cni_node.node_ns) == []
    assert [r["dev"] for r in host_routes(cni_node.node_ns)] == ["eni0r"]  # theirs, untouched
    assert cni_node.checkpoint()["allocations"] == []
    # An interface of that name already in the pod: the spec says ADD must fail.
    subprocess.run(["ip", "-n", pod, "link", "add", "eth0", "type", "veth", "peer", "name", "x0"], check=True)
    rc, err, _ = exec_plugin(plugin, cni_env("ADD", "rb2", netns), cni_node.conf())
    assert rc == 1 and "already exists" in err["details"]
    assert _veths(cni_node) == set() and cni_node.checkpoint()["allocations"] == []
    # A namespace that does not exist: code 3, nothing allocated.
    rc, err, _ = exec_plugin(plugin, cni_env("ADD", "rb3", "/run/netns/vpct1-nope"), cni_node.conf())
    assert rc == 1 and err["code"] == 3
    assert cni_node.checkpoint()["allocations"] == []


def test_del_with_the_namespace_gone_or_unnamed(cni_node: SimNode) -> None:
    plugin = plugin_script()
    pod, netns = cni_node.new_pod()
    rc, res, _ = exec_plugin(plugin, cni_env("ADD", "gone1", netns), cni_node.conf())
    assert rc == 0
    subprocess.run(["ip", "netns", "del", pod], check=True)  # the runtime tore it down first
    rc, out, _ = exec_plugin(plugin, cni_env("DEL", "gone1", netns), cni_node.conf(prevResult=res))
    assert (rc, out) == (0, None)
    rc, out, _ = exec_plugin(plugin, cni_env("DEL", "gone1", ""), cni_node.conf())  # no CNI_NETNS at all
    assert (rc, out) == (0, None)
    assert cni_node.checkpoint()["allocations"] == [] and pod_rules(cni_node.node_ns) == []
    wait_for(lambda: _veths(cni_node) == set(), "veth gone")


def test_agent_down_del_is_spooled_then_replayed(cni_node: SimNode) -> None:
    plugin = plugin_script()
    _, netns = cni_node.new_pod()
    rc, res, _ = exec_plugin(plugin, cni_env("ADD", "sp1", netns), cni_node.conf())
    assert rc == 0
    ip = res["ips"][0]["address"][:-3]
    cni_node.stop_agent(kill=True)
    rc, err, _ = exec_plugin(plugin, cni_env("ADD", "sp2", netns), cni_node.conf())
    assert rc == 1 and err["code"] == 11 and "unreachable" in err["msg"]
    rc, err, _ = exec_plugin(plugin, cni_env("STATUS"), cni_node.conf())
    assert rc == 1 and err["code"] == 50
    rc, out, _ = exec_plugin(plugin, cni_env("DEL", "sp1", netns), cni_node.conf())
    assert (rc, out) == (0, None)
    assert [p.name for p in cni_node.pending_dir.iterdir()] != []
    # The IP is still held: nothing can hand it out before the DEL is replayed.
    assert [a["ip"] for a in cni_node.checkpoint()["allocations"]] == [ip]
    cni_node.start_agent()  # replays the spool before serving
    assert list(cni_node.pending_dir.iterdir()) == []
    ckpt = cni_node.checkpoint()
    assert ckpt["allocations"] == [] and [c[0] for c in ckpt["cooldown"]] == [ip]
    wait_for(lambda: _veths(cni_node) == set(), "spooled DEL removed the veth")


def test_restart_keeps_assignments(cni_node: SimNode) -> None:
    plugin = plugin_script()
    _, netns = cni_node.new_pod()
    rc, res, _ = exec_plugin(plugin, cni_env("ADD", "rs1", netns), cni_node.conf())
    assert rc == 0
    cni_node.stop_agent(kill=True)  # no goodbye: only the checkpoint survives
    cni_node.start_agent()
    rc, out, _ = exec_plugin(plugin, cni_env("CHECK", "rs1", netns), cni_node.conf(prevResult=res))
    assert (rc, out) == (0, None)
    _, netns2 = cni_node.new_pod()
    rc, res2, _ = exec_plugin(plugin, cni_env("ADD", "rs2", netns2), cni_node.conf())
    assert rc == 0 and res2["ips"][0]["address"] != res["ips"][0]["address"]


def test_not_ready_node_refuses_add_but_serves_del(make_cni_node: Any) -> None:
    sim = make_cni_node(5, ready=False)
    plugin = plugin_script()
    _, netns = sim.new_pod()
    rc, err, _ = exec_plugin(plugin, cni_env("STATUS"), sim.conf())
    assert rc == 1 and err["code"] == 50
    rc, err, _ = exec_plugin(plugin, cni_env("ADD", "nr1", netns), sim.conf())
    assert rc == 1 and err["code"] == 11 and "not ready" in err["msg"]
    assert exec_plugin(plugin, cni_env("DEL", "nr1", netns), sim.conf())[0] == 0


def test_gc_releases_attachments_not_listed(cni_node: SimNode) -> None:
    plugin = plugin_script()
    added = {}
    for cid in ("keep1", "drop1", "drop2"):
        _, netns = cni_node.new_pod()
        rc, res, _ = exec_plugin(plugin, cni_env("ADD", cid, netns), cni_node.conf())
        assert rc == 0
        added[cid] = res["ips"][0]["address"][:-3]
    valid = [{"containerID": "keep1", "ifname": "eth0"}]
    rc, out, _ = exec_plugin(plugin, cni_env("GC"), cni_node.conf(**{"cni.dev/valid-attachments": valid}))
    assert (rc, out) == (0, None)
    assert [a["container_id"] for a in cni_node.checkpoint()["allocations"]] == ["keep1"]
    wait_for(lambda: len(_veths(cni_node)) == 1, "GC'd veths destroyed")
    assert [r.get("dst") for r in pod_rules(cni_node.node_ns)] == [added["keep1"]]


def test_gc_without_the_attachment_list_removes_nothing(cni_node: SimNode) -> None:
    """Issue 11 finding 1: a GC whose config lacks the list used to wipe the node."""
    plugin = plugin_script()
    for cid in ("run1", "run2", "run3", "run4"):
        _, netns = cni_node.new_pod()
        assert exec_plugin(plugin, cni_env("ADD", cid, netns), cni_node.conf())[0] == 0
    before = (cni_node.checkpoint()["allocations"], _veths(cni_node), pod_rules(cni_node.node_ns))
    for lists in ({}, {"cni.dev/valid-attachments": None}):
        rc, err, _ = exec_plugin(plugin, cni_env("GC"), cni_node.conf(**lists))
        assert rc == 1 and err["code"] == 7, err
    assert (cni_node.checkpoint()["allocations"], _veths(cni_node), pod_rules(cni_node.node_ns)) == before
    assert len(before[0]) == 4 and len(before[1]) == 4
    # The draft name alone is honoured: run1 and run2 stay, the others are collected.
    keep = [{"containerID": c, "ifname": "eth0"} for c in ("run1", "run2")]
    rc, out, _ = exec_plugin(plugin, cni_env("GC"), cni_node.conf(**{"cni.dev/attachments": keep}))
    assert (rc, out) == (0, None)
    assert sorted(a["container_id"] for a in cni_node.checkpoint()["allocations"]) == ["run1", "run2"]
    wait_for(lambda: len(_veths(cni_node)) == 2, "collected veths destroyed")


def test_chain_with_reference_portmap(cni_node: SimNode) -> None:
    """vpcnet-cni then Debian's portmap, as a conflist chains them (prevResult passed)."""
    plugin = plugin_script()
    _, netns = cni_node.new_pod()
    env = cni_env("ADD", "pm1", netns)
    rc, ours, _ = exec_plugin(plugin, env, cni_node.conf("1.0.0"))
    assert rc == 0
    portmap_conf = {
        "cniVersion": "1.0.0",
        "name": "vpcnet",
        "type": "portmap",
        "capabilities": {"portMappings": True},
        "runtimeConfig": {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]},
        "prevResult": ours,
    }
    # The runtime runs chained plugins in the node's namespace (portmap writes iptables).
    portmap = ["ip", "netns", "exec", cni_node.node_ns, "/usr/lib/cni/portmap"]
    rc, final, _ = exec_plugin(portmap, env, portmap_conf)
    assert rc == 0, final
    assert final["ips"] == ours["ips"] and final["interfaces"] == ours["interfaces"]
    nat = subprocess.run(
        ["ip", "netns", "exec", cni_node.node_ns, "iptables", "-t", "nat", "-S"], capture_output=True, text=True, check=True
    ).stdout
    assert "18080" in nat and ours["ips"][0]["address"][:-3] in nat
    check_env = cni_env("CHECK", "pm1", netns)
    # Our CHECK against the chain's final result. (Debian's portmap 1.1.1 fails its own
    # CHECK on IPv4-only pods: "could not check ipv6 dnat", a known bug of that release.)
    assert exec_plugin(plugin, check_env, cni_node.conf("1.0.0", prevResult=final))[0] == 0
    del_env = cni_env("DEL", "pm1", netns)
    assert exec_plugin(portmap, del_env, {**portmap_conf, "prevResult": final})[0] == 0
    assert exec_plugin(plugin, del_env, cni_node.conf("1.0.0", prevResult=final))[0] == 0
    nat = subprocess.run(
        ["ip", "netns", "exec", cni_node.node_ns, "iptables", "-t", "nat", "-S"], capture_output=True, text=True, check=True
    ).stdout
    assert "18080" not in nat
