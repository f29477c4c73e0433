"""The real agent programs real node namespaces of a simulated VPC; pods are made by
exec'ing the installed plugin as a runtime does; traffic proves the result."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.fixtures.netns import (
    REFERENCE_PLUGINS,
    VPCNET_BIN,
    SimEnv,
    SimNode,
    host_state,
    wait_for,
)
from vpcnet_sim import netns as nx
from vpcnet_sim.runtime import CniError, Pod, PodRuntime

pytestmark = pytest.mark.timeout(240)


def _two_nodes(sim_env: SimEnv) -> tuple[SimNode, SimNode]:
    """Node a: 1 secondary IP on its primary ENI + ENI1 in the other subnet (4 IPs).
    Node b: no secondary on its primary ENI + ENI1 in its own subnet (4 IPs)."""
    a = sim_env.add_node("node-a", subnet_index=0)
    b = sim_env.add_node("node-b", subnet_index=0)
    a.assign_ips(0, 1)
    a.attach_eni(subnet_index=1, device_index=1, ip_count=4)
    b.attach_eni(subnet_index=0, device_index=1, ip_count=4)
    return a, b


def _eni_of(node: SimNode, ip: str) -> int:
    for eni in node.view()["enis"]:
        if ip in eni["secondary_ips"]:
            return int(eni["device_index"])
    raise AssertionError(f"{ip} is on no ENI of {node.name}")


def test_pods_reach_each_other_the_hosts_and_the_outside_through_snat(sim_env: SimEnv) -> None:
    a, b = _two_nodes(sim_env)
    agent_a = sim_env.agent(a).start()
    # b chains Debian's reference portmap after vpcnet-cni, as a cluster with hostPorts does.
    agent_b = sim_env.agent(b, VPCNET_AGENT_CHAINED_PLUGINS="portmap")
    agent_b.bin_dir.mkdir(parents=True, exist_ok=True)
    (agent_b.bin_dir / "portmap").symlink_to(REFERENCE_PLUGINS / "portmap")  # /opt/cni/bin
    agent_b.start()

    # Not configured yet: the agent reports, but writes no conflist (invariant 5).
    wait_for(lambda: a.agent_hash().get("ready") == "0", 30, "agent a's first report")
    assert not agent_a.conflist_path.exists()

    gen_a, gen_b = a.publish_state(), b.publish_state()
    agent_a.wait_ready(gen_a)
    agent_b.wait_ready(gen_b)
    conf = json.loads(agent_a.conflist_path.read_text())
    assert conf["plugins"][0]["type"] == "vpcnet-cni"
    assert conf["cniVersions"] == ["0.4.0", "1.0.0", "1.1.0"]
    assert (agent_a.bin_dir / "vpcnet-cni").exists()  # installed before the conflist
    conf_b = json.loads(agent_b.conflist_path.read_text())
    assert [p["type"] for p in conf_b["plugins"]] == ["vpcnet-cni", "portmap"]
    # Debian's portmap speaks up to 1.0.0: the list must not announce 1.1.0.
    assert conf_b["cniVersion"] == "1.0.0" and "1.1.0" not in conf_b["cniVersions"]

    rt_a, rt_b = agent_a.runtime(), agent_b.runtime()
    a1, a2 = sim_env.new_pod(rt_a, "a1"), sim_env.new_pod(rt_a, "a2")
    b1 = sim_env.new_pod(rt_b, "b1")
    for rt, pod in ((rt_a, a1), (rt_a, a2), (rt_b, b1)):
        rt.add(pod)
    # The pool hands out the primary ENI's IPs first: a1 on eth0, a2 on ENI1; b has
    # none on its primary ENI, so b1 is on ENI1.
    assert _eni_of(a, a1.ip) == 0
    assert _eni_of(a, a2.ip) == 1
    assert _eni_of(b, b1.ip) == 1

    assert nx.ping(a1.netns_name, a2.ip), "pod -> pod on one node"
    assert nx.ping(a2.netns_name, b1.ip), "pod -> pod across nodes, both on non-primary ENIs"
    assert nx.ping(b1.netns_name, a1.ip), "pod (ENI1) -> pod on another node's primary ENI"
    assert nx.ping(a2.netns_name, a.primary_ip), "pod -> its host"
    assert nx.ping(b1.netns_name, a.primary_ip), "pod -> another host"

    outside = sim_env.vpc.outside_host_ip
    port = sim_env.vpc.outside_echo_port
    for pod in (a1, a2):
        seen = nx.source_seen_by(pod.netns_name, outside, port)
        assert seen == a.primary_ip, f"{pod.name} reached the outside as {seen}, not SNAT'd"
    assert nx.source_seen_by(b1.netns_name, outside, port) == b.primary_ip


def test_agent_restart_changes_nothing_on_a_configured_host(sim_env: SimEnv) -> None:
    a, b = _two_nodes(sim_env)
    agent = sim_env.agent(a).start()
    gen = a.publish_state()
    agent.wait_ready(gen)
    rt = agent.runtime()
    pod = sim_env.new_pod(rt, "p1")
    rt.add(pod)
    before = host_state(a.netns)

    agent.stop()
    assert agent.proc is not None and agent.proc.returncode == 0, agent.log()[-3000:]
    agent.start()
    status = agent.base / "run" / "agent-status.json"  # default: next to the socket
    assert agent.proc is not None
    pid = agent.proc.pid
    wait_for(
        lambda: status.exists()
        and json.loads(status.read_text()).get("pid") == pid
        and json.loads(status.read_text()).get("ready"),
        30,
        "the restarted agent ready",
    )
    after = host_state(a.netns)
    for what in before:
        assert after[what] == before[what], f"restart changed {what}"
    rt.check(pod)  # the pod's plumbing is intact and its IP still ours
    assert nx.ping(pod.netns_name, a.primary_ip)


def test_enis_follow_redis_through_the_changed_channel(sim_env: SimEnv) -> None:
    a = sim_env.add_node("node-a", subnet_index=0)
    a.attach_eni(subnet_index=1, device_index=1, ip_count=3)
    # A resync far away: only the ``changed`` channel can make the agent react in time.
    agent = sim_env.agent(a, VPCNET_AGENT_RESYNC_SECONDS="600").start()
    agent.wait_ready(a.publish_state())

    def table(n: int) -> str:
        # A table that never had a route does not exist yet: that reads as empty.
        return nx.run(["ip", "netns", "exec", a.netns, "ip", "route", "show", "table", str(n)],
                      check=False)

    assert "default via 10.0.16.1" in table(101)
    assert a.agent_hash()["free"] == "3"

    # A new ENI attached in EC2 and written to Redis before its link shows up on the
    # host: the agent must not report ready for that generation until it is programmed.
    a.attach_eni(subnet_index=0, device_index=2, ip_count=3)
    gen = a.publish_state(plug=False)
    wait_for(lambda: a.agent_hash().get("ready") == "0", 5, "not ready while ENI2 has no link")
    assert table(102).strip() == ""
    sim_env.vpc.sync()  # the hypervisor hot-plugs the NIC
    agent.wait_ready(gen, timeout=10)
    assert "default via 10.0.0.1" in table(102)
    assert a.agent_hash()["free"] == "6"

    gen = a.publish_state(skip=(2,))  # the control plane drops ENI2 from the node
    agent.wait_ready(gen, timeout=5)
    wait_for(lambda: table(102).strip() == "", 5, "table 102 flushed")
    assert "default via 10.0.16.1" in table(101)
    wait_for(lambda: a.agent_hash()["free"] == "3", 5, "the pool shrunk to ENI1's IPs")


def test_add_and_del_work_while_redis_is_down_and_the_mirror_reconciles(sim_env: SimEnv) -> None:
    a = sim_env.add_node("node-a", subnet_index=0)
    a.attach_eni(subnet_index=1, device_index=1, ip_count=4)
    agent = sim_env.agent(a).start()
    gen = a.publish_state()
    agent.wait_ready(gen)
    rt = agent.runtime()
    old = sim_env.new_pod(rt, "old")
    rt.add(old)

    sim_env.redis_server.stop()
    try:
        new = sim_env.new_pod(rt, "new")
        rt.add(new)  # served from the local pool
        rt.delete(old)
        assert new.ip != old.ip
        assert nx.ping(new.netns_name, a.primary_ip)
    finally:
        sim_env.redis_server.start()

    def mirrored() -> bool:
        client = sim_env.redis()
        try:
            assigned = {k.decode() for k in client.hkeys(a.keys.assigned)}
            cooling = {m.decode() for m in client.zrange(a.keys.cooldown, 0, -1)}
        finally:
            client.close()
        return assigned == {new.ip} and old.ip in cooling

    wait_for(mirrored, 15, "the Redis mirror to reconcile after the outage")
    assert agent.alive()

    # An agent restarted while Redis is down serves from its checkpoint.
    sim_env.redis_server.stop()
    try:
        agent.stop()
        agent.start()
        third = sim_env.new_pod(rt, "third")
        wait_for(lambda: _try_add(rt, third), 20, "ADD on the restarted agent without Redis")
        assert third.ip not in (new.ip, old.ip)  # old is cooling down, new is held
        assert nx.ping(third.netns_name, new.ip)
    finally:
        sim_env.redis_server.start()


def _try_add(rt: PodRuntime, pod: Pod) -> bool:
    try:
        rt.add(pod)
    except CniError as e:
        assert e.code == 11, e  # "try again later" while the agent starts
        return False
    return True


def test_release_requests_are_confirmed_only_for_unused_ips(sim_env: SimEnv) -> None:
    a = sim_env.add_node("node-a", subnet_index=0)
    a.attach_eni(subnet_index=1, device_index=1, ip_count=3)
    agent = sim_env.agent(a, VPCNET_AGENT_RESYNC_SECONDS="600").start()
    gen = a.publish_state()
    agent.wait_ready(gen)
    rt = agent.runtime()
    pod = sim_env.new_pod(rt, "p")
    rt.add(pod)
    unused = sorted(set(a.eni_view(1)["secondary_ips"]) - {pod.ip})[0]

    client = sim_env.redis()
    try:
        client.sadd(a.keys.release_req, unused, pod.ip)
        client.publish(a.keys.changed_channel, "release-req")
        wait_for(lambda: client.sismember(a.keys.release_ok, unused), 5, "release-ok")
        assert not client.sismember(a.keys.release_ok, pod.ip)  # a pod holds it
    finally:
        client.close()
    wait_for(lambda: a.agent_hash().get("free") == "1", 5, "the released IP left the pool")


def test_check_ready_probe_follows_the_agent(sim_env: SimEnv) -> None:
    a = sim_env.add_node("node-a", subnet_index=0)
    a.attach_eni(subnet_index=1, device_index=1, ip_count=2)
    agent = sim_env.agent(a)

    def probe() -> int:
        return subprocess.run(
            [str(VPCNET_BIN), "agent", "--check-ready"],
            env=agent.env,
            capture_output=True,
            timeout=30,
        ).returncode

    assert probe() == 1  # no agent yet
    agent.start()
    agent.wait_ready(a.publish_state())
    assert probe() == 0
