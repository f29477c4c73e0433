"""The real agent on a dual-family node of the simulated VPC, pods made by exec'ing the
installed plugin: an ADD waits for the /80 that is coming and gets both addresses, the
``assigned`` mirror holds both, CHECK checks both, DEL frees both; a node that cannot get
a /80 fails the ADD at once with the control plane's reason and keeps no IPv4 half-done;
a /80 asked back is confirmed in ``release-ok`` once no pod holds an address of it.

The control plane's /80 plans are not on main yet (V2), nor the simulated VPC's IPv6
(V5): the /80 is written into the node's ENI record as the control plane will, and the
node gets the IPv6 default route via fe80::1 the simulated VPC will give it (the
dataplane refuses /80s without one). No IPv6 traffic is sent: the pod's interface and
the node's routes show what was programmed.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from dataclasses import replace
from typing import Any

import pytest

from tests.fixtures.netns import SimEnv, SimNode, wait_for
from vpcnet.domain import Assignment
from vpcnet.state.keys import ClusterKeys
from vpcnet_sim import netns as nx
from vpcnet_sim.runtime import CniError, Pod, PodRuntime

pytestmark = pytest.mark.timeout(240)

SUBNET6 = ipaddress.IPv6Network("2001:db8:0:1::/64")
PREFIX = ipaddress.IPv6Network("2001:db8:0:1:a::/80")


def publish(node: SimNode, prefixes6: tuple[ipaddress.IPv6Network, ...], family: str = "dual", **fields: str) -> int:
    """Write ``enis`` + ``node`` for a new generation in one transaction, as the control
    plane does for a dual node: the /80s on the primary ENI, ``ip_family`` and ``fields``."""
    node.env.vpc.sync()
    node.generation += 1
    records = [
        replace(r, ipv6_prefixes=prefixes6, subnet_ipv6_cidr=SUBNET6) if r.device_index == 0 else r
        for r in node.records()
    ]
    k = node.keys
    client = node.env.redis()
    try:
        pipe = client.pipeline(transaction=True)
        pipe.delete(k.enis)
        pipe.hset(k.enis, mapping={r.eni_id: r.to_json() for r in records})
        mapping: dict[str | bytes, bytes | float | int | str] = {
            "instance_id": node.instance_id, "instance_type": "m5.large",
            "primary_ip": node.primary_ip, "phase": "provisioned", "mode": "warm",
            "ip_family": family, "error": "", "no_growth": "",
            "generation": node.generation, "updated": time.time(),
        }
        mapping.update(fields)
        pipe.hset(k.node, mapping=mapping)
        pipe.sadd(ClusterKeys(node.env.cluster).nodes, node.name)
        pipe.publish(k.changed_channel, "enis")
        pipe.execute()
    finally:
        client.close()
    return node.generation


def dual_node(sim_env: SimEnv, name: str) -> SimNode:
    node = sim_env.add_node(name, subnet_index=0)
    node.assign_ips(0, 2)
    nx.run(["ip", "-n", node.netns, "-6", "route", "replace", "default", "via", "fe80::1", "dev", "eth0"])
    return node


def on_pod(pod: Pod) -> set[str]:
    """The pod interface's global addresses (both families)."""
    out = nx.run(["ip", "-n", pod.netns_name, "-j", "addr", "show", "dev", pod.ifname])
    return {f"{a['local']}/{a['prefixlen']}" for li in json.loads(out) for a in li["addr_info"]
            if a.get("scope") == "global"}


def host_routes6(node: SimNode) -> str:
    return nx.run(["ip", "-n", node.netns, "-6", "route", "show", "table", "main"])


def proxied(node: SimNode) -> str:
    """The node's NDP proxy entries (one per IPv6 pod, on the ENI link of its /80)."""
    return nx.run(["ip", "-n", node.netns, "-6", "neigh", "show", "proxy"])


def assigned(node: SimNode) -> dict[str, Assignment]:
    client = node.env.redis()
    try:
        raw = client.hgetall(node.keys.assigned)
    finally:
        client.close()
    return {k.decode(): Assignment.from_json(v) for k, v in raw.items()}


def redis_get(node: SimNode, what: str) -> Any:
    client = node.env.redis()
    try:
        if what == "demand":
            return {k.decode(): v.decode() for k, v in client.hgetall(node.keys.demand).items()}
        return {m.decode() for m in client.smembers(node.keys.release_ok)}
    finally:
        client.close()


def status(rt: PodRuntime, pod: Pod) -> dict[str, Any]:
    conflist = rt.load_conflist()
    return rt.exec_plugin(conflist, conflist["plugins"][0], "STATUS", pod, None)


def addresses(pod: Pod) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(e["address"].split("/")[0]) for e in pod.result["ips"]]


def test_dual_pods_get_both_addresses_once_the_80_arrives(sim_env: SimEnv) -> None:
    node = dual_node(sim_env, "node-d")
    agent = sim_env.agent(node).start()
    agent.wait_ready(publish(node, ()))  # dual, but no /80 delegated yet
    rt = agent.runtime()

    # The ADD waits: the /80 is coming (no error, no no_growth), so it counts as demand.
    pod = sim_env.new_pod(rt, "d1")
    assert status(rt, pod) == {}  # a /80 that is coming: a pod can start
    failure: list[BaseException] = []

    def add() -> None:
        try:
            rt.add(pod)
        except BaseException as e:  # reported by the assertion below
            failure.append(e)

    adding = threading.Thread(target=add)
    adding.start()
    wait_for(lambda: redis_get(node, "demand").get("waiting") == "1", 30, "the ADD waiting for a /80")
    assert pod.result == {}
    publish(node, (PREFIX,))
    adding.join(60)
    assert not adding.is_alive() and not failure, (failure, agent.log()[-3000:])

    ip4, ip6 = addresses(pod)
    assert ip4.version == 4 and ip4 in {ipaddress.ip_address(i) for i in node.eni_view(0)["secondary_ips"]}
    assert ip6.version == 6 and ip6 in PREFIX and ip6 != PREFIX.network_address
    assert [r["dst"] for r in pod.result["routes"]] == ["0.0.0.0/0", "::/0"]
    assert on_pod(pod) == {f"{ip4}/32", f"{ip6}/128"}  # the dataplane programmed both
    assert f"{ip6} dev" in host_routes6(node) and f"{ip6} dev eth0" in proxied(node)
    mirror = wait_for(lambda: (m := assigned(node)) and len(m) == 2 and m, 10, "both addresses mirrored")
    assert set(mirror) == {str(ip4), str(ip6)}
    assert {(a.container_id, a.ifname) for a in mirror.values()} == {(pod.container_id, "eth0")}

    rt.check(pod)  # the agent checks both families against prevResult
    wrong = dict(pod.result, ips=[pod.result["ips"][0], dict(pod.result["ips"][1], address=f"{PREFIX[9]}/128")])
    with pytest.raises(CniError) as bad:
        rt.exec_plugin(rt.load_conflist(), rt.load_conflist()["plugins"][0], "CHECK", pod, wrong)
    assert bad.value.code == 102 and "IPv6" in bad.value.error["msg"]

    rt.delete(pod)
    wait_for(lambda: assigned(node) == {}, 10, "DEL freeing both addresses in the mirror")
    assert str(ip6) not in proxied(node)  # DEL took the IPv6 host side down too

    # The /80 asked back: no pod holds an address of it, so it is confirmed.
    client = node.env.redis()
    try:
        client.sadd(node.keys.release_req, str(PREFIX))
        client.publish(node.keys.changed_channel, "release")
    finally:
        client.close()
    wait_for(lambda: str(PREFIX) in redis_get(node, "release-ok"), 30, "the /80 in release-ok")
    checkpoint = json.loads((agent.base / "lib" / "checkpoint.json").read_text())["payload"]
    assert checkpoint["ipv6"]["released"] == [str(PREFIX)]


def test_a_node_that_cannot_get_an_80_fails_the_add_at_once_with_the_reason(sim_env: SimEnv) -> None:
    node = dual_node(sim_env, "node-e")
    agent = sim_env.agent(node).start()
    why = "subnet-x has no IPv6 CIDR: a dual node needs one"
    agent.wait_ready(publish(node, (), error=why))
    rt = agent.runtime()
    pod = sim_env.new_pod(rt, "e1")
    with pytest.raises(CniError) as unavailable:
        status(rt, pod)
    assert unavailable.value.code == 50 and why in unavailable.value.error["details"]
    with pytest.raises(CniError) as failed:
        rt.add(pod)
    # The blocker's reason, not the end of the ADD's budget (which it did not wait out).
    assert failed.value.code == 11 and why in failed.value.error["details"], failed.value.error
    assert "budget" not in failed.value.error["details"]
    assert assigned(node) == {}  # the IPv4 taken first was given back: nothing half-done
    checkpoint = json.loads((agent.base / "lib" / "checkpoint.json").read_text())["payload"]
    assert checkpoint["allocations"] == [] and checkpoint["ipv6"]["allocations"] == []


def test_a_dual_pod_keeps_both_addresses_across_redis_loss_and_restart_until_gc(sim_env: SimEnv) -> None:
    node = dual_node(sim_env, "node-f")
    agent = sim_env.agent(node).start()
    agent.wait_ready(publish(node, (PREFIX,)))
    rt = agent.runtime()
    pod = sim_env.new_pod(rt, "f1")
    rt.add(pod)
    ip4, ip6 = addresses(pod)
    assert ip6 in PREFIX

    # Redis loses the node (invariant 4): the restarted agent serves from its checkpoint.
    agent.stop()
    client = node.env.redis()
    try:
        client.delete(node.keys.node, node.keys.enis, node.keys.assigned)
    finally:
        client.close()
    agent.start()
    wait_for(lambda: set(assigned(node)) == {str(ip4), str(ip6)}, 30,
             "the restarted agent mirroring both addresses from its checkpoint")
    rt.check(pod)  # both still the pod's, as prevResult recorded them

    # GC without the pod among the valid attachments frees both.
    conflist = rt.load_conflist()
    gc = dict(conflist["plugins"][0], **{"cni.dev/valid-attachments": []})
    rt.exec_plugin(conflist, gc, "GC", pod, None)
    wait_for(lambda: assigned(node) == {}, 10, "GC freeing both addresses in the mirror")


def test_an_ipv6_only_pod_gets_only_an_ipv6(sim_env: SimEnv) -> None:
    node = dual_node(sim_env, "node-g")
    agent = sim_env.agent(node).start()
    agent.wait_ready(publish(node, (PREFIX,), family="ipv6"))
    rt = agent.runtime()
    pod = sim_env.new_pod(rt, "g1")
    rt.add(pod)
    (ip6,) = addresses(pod)
    assert ip6 in PREFIX and on_pod(pod) == {f"{ip6}/128"}
    assert pod.result["routes"] == [{"dst": "::/0", "gw": "fe80::1"}]
    assert set(wait_for(lambda: assigned(node), 10, "the IPv6 mirrored")) == {str(ip6)}
    assert status(rt, pod) == {}
    rt.check(pod)
    rt.delete(pod)
    wait_for(lambda: assigned(node) == {}, 10, "DEL freeing the IPv6 in the mirror")
