"""ADD -> CHECK -> DEL -> DEL in real namespaces, the plugin exec'd as a runtime does."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

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
from vpcnet_sim.bench.cni_node import SimNode

K8S_ARGS = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"


def _pod_state(netns_name: str) -> dict[str, Any]:
    return {
        "addr": ip_json(netns_name, "addr", "show", "dev", "eth0"),
        "routes": ip_json(netns_name, "route", "show"),
        "neigh": ip_json(netns_name, "neigh", "show", "dev", "eth0"),
    }


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_add_check_del_del(cni_node: SimNode, version: str) -> None:
    plugin = plugin_script()
    pod, netns = cni_node.new_pod()
    cid = f"ctr{version.replace('.', '')}"
    rc, result, _ = exec_plugin(plugin, cni_env("ADD", cid, netns, args=K8S_ARGS), cni_node.conf(version))
    assert rc == 0, result
    assert result["cniVersion"] == version
    host_if, pod_if = result["interfaces"]
    assert pod_if == {"name": "eth0", "mac": pod_if["mac"], "sandbox": netns, **({"mtu": 9001} if version == "1.1.0" else {})}
    assert host_if["name"].startswith("vpc") and len(host_if["name"]) <= 15
    (ip_entry,) = result["ips"]
    assert ip_entry["interface"] == 1 and ip_entry["gateway"] == "169.254.1.1"
    assert ("version" in ip_entry) == (version == "0.4.0")
    ip = ip_entry["address"].split("/")[0]
    assert ip_entry["address"].endswith("/32")

    # What the pod got: /32, the link-local gateway route, default route, static neighbour.
    state = _pod_state(pod)
    assert [(a["local"], a["prefixlen"]) for a in state["addr"][0]["addr_info"] if a["family"] == "inet"] == [(ip, 32)]
    assert state["addr"][0]["mtu"] == 9001
    assert {"dst": "169.254.1.1", "dev": "eth0"}.items() <= next(
        r for r in state["routes"] if r["dst"] == "169.254.1.1"
    ).items()
    assert any(r["dst"] == "default" and r.get("gateway") == "169.254.1.1" for r in state["routes"])
    (neigh,) = state["neigh"]
    assert neigh["dst"] == "169.254.1.1" and neigh["lladdr"] == host_if["mac"] and "PERMANENT" in neigh["state"]
    # What the node got: the /32 route through the host veth and the `to` rule
    # (ENI 0 is the primary: no `from` rule).
    assert any(r["dst"] == ip and r["dev"] == host_if["name"] for r in host_routes(cni_node.node_ns))
    assert [(r.get("dst"), r["table"]) for r in pod_rules(cni_node.node_ns)] == [(ip, "main")]
    # The assignment is durable, with the pod's identity from CNI_ARGS.
    (alloc,) = cni_node.checkpoint()["allocations"]
    assert (alloc["ip"], alloc["container_id"], alloc["pod_name"]) == (ip, cid, "web-0")

    check = cni_node.conf(version, prevResult=result)
    rc, out, _ = exec_plugin(plugin, cni_env("CHECK", cid, netns, args=K8S_ARGS), check)
    assert (rc, out) == (0, None)

    for _ in range(2):  # DEL is idempotent
        rc, out, _ = exec_plugin(plugin, cni_env("DEL", cid, netns, args=K8S_ARGS), check)
        assert (rc, out) == (0, None)
    wait_for(lambda: host_if["name"] not in links(cni_node.node_ns), "host veth destroyed")
    assert "eth0" not in links(pod)
    assert pod_rules(cni_node.node_ns) == [] and host_routes(cni_node.node_ns) == []
    ckpt = cni_node.checkpoint()
    assert ckpt["allocations"] == [] and [c[0] for c in ckpt["cooldown"]] == [ip]

    # CHECK after the pod network is broken fails with a spec error.
    rc, out, _ = exec_plugin(plugin, cni_env("ADD", cid + "b", netns), cni_node.conf(version))
    assert rc == 0
    subprocess.run(["ip", "-n", pod, "neigh", "flush", "dev", "eth0", "nud", "permanent"], check=True)
    rc, err, _ = exec_plugin(plugin, cni_env("CHECK", cid + "b", netns), cni_node.conf(version, prevResult=out))
    assert rc != 0 and err["code"] == 102 and "neighbour" in err["details"]
    assert exec_plugin(plugin, cni_env("DEL", cid + "b", netns), cni_node.conf(version))[0] == 0


def test_pods_reach_each_other_and_the_node(make_cni_node: Any) -> None:
    """Real traffic: node -> pod and pod -> pod, including a pod on a secondary ENI."""
    sim = make_cni_node(60)  # two ENIs: the pool spills onto ENI 1 (table 101)
    plugin = plugin_script()
    subprocess.run(["ip", "-n", sim.node_ns, "addr", "add", f"{sim.enis[0].primary_ip}/16", "dev", "eni0"], check=True)
    pods = []
    for i in range(51):  # ENI 0 holds 49 pod IPs: the last two come from ENI 1
        name, netns = sim.new_pod()
        rc, res, _ = exec_plugin(plugin, cni_env("ADD", f"p{i}", netns), sim.conf())
        assert rc == 0, res
        pods.append((name, res["ips"][0]["address"].split("/")[0]))
    on_eni1 = [p for p in pods if p[1].startswith("10.77.2.")]
    assert len(on_eni1) == 2
    assert any(r.get("src") == on_eni1[0][1] and r["table"] == "101" for r in pod_rules(sim.node_ns))

    def ping(netns: str, ip: str) -> int:
        return subprocess.run(
            ["ip", "netns", "exec", netns, "ping", "-c1", "-W2", ip], capture_output=True, timeout=20
        ).returncode

    assert ping(sim.node_ns, pods[0][1]) == 0
    assert ping(pods[0][0], pods[1][1]) == 0
    # The ENI-1 pod's replies obey `from <ip> lookup 101`; give that table the way
    # back to the node's pods as the agent's per-ENI tables would.
    subprocess.run(["ip", "-n", sim.node_ns, "route", "add", "10.77.0.0/16", "dev", "eni1", "table", "101"], check=True)
    assert ping(pods[0][0], on_eni1[0][1]) == 0
    assert ping(on_eni1[0][0], pods[2][1]) == 0


def test_installed_plugin_round_trip(cni_node: SimNode, installed_plugin: str) -> None:
    """The plugin as the agent installs it (launcher + bundled runtime) speaks the same."""
    pod, netns = cni_node.new_pod()
    rc, res, _ = exec_plugin(installed_plugin, cni_env("ADD", "inst1", netns), cni_node.conf())
    assert rc == 0, res
    rc, out, _ = exec_plugin(installed_plugin, cni_env("CHECK", "inst1", netns), cni_node.conf(prevResult=res))
    assert (rc, out) == (0, None)
    rc, out, _ = exec_plugin(installed_plugin, cni_env("DEL", "inst1", netns), cni_node.conf(prevResult=res))
    assert (rc, out) == (0, None)
    rc, out, _ = exec_plugin(installed_plugin, {"CNI_COMMAND": "VERSION"}, {"cniVersion": "1.1.0"})
    assert rc == 0 and out["supportedVersions"] == ["0.4.0", "1.0.0", "1.1.0"]
