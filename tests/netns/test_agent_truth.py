"""Truth ordering (invariant 7) with the real agent, real pods and a real Redis that loses
writes: the node's own truth (checkpoint, live links, instance metadata) outranks Redis
for anything a running pod uses, and store versions of two histories are never compared.

Control-plane writes go through the real Lua write (``ControlState.write_node``); the
readiness check is the real ``node_ready`` against the Kubernetes emulator.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.fixtures.netns import AgentProcess, SimEnv, SimNode, wait_for
from vpcnet.control.context import ControlContext
from vpcnet.control.ready import node_ready
from vpcnet.settings import Settings
from vpcnet.state.control import ControlState
from vpcnet.state.records import AgentRecord, StoreVersion, text_fields
from vpcnet.wellknown import NOT_READY_TAINT
from vpcnet_sim import netns as nx
from vpcnet_sim.kube import KubeEmulator
from vpcnet_sim.runtime import Pod, PodRuntime

pytestmark = pytest.mark.timeout(240)


def write(node: SimNode, skip: tuple[int, ...] = ()) -> StoreVersion:
    """What a provisioning pass writes (under the node's lock); the version it stamped."""
    node.env.vpc.sync()
    client = node.env.redis()
    try:
        state = ControlState(client, node.env.cluster)
        fields = {"instance_id": node.instance_id, "instance_type": "m5.large",
                  "primary_ip": node.primary_ip, "phase": "provisioned"}
        with state.locked(node.name) as token:
            state.write_node(node.name, fields, node.records(skip), lock_token=token)
        return version(node)
    finally:
        client.close()


def version(node: SimNode) -> StoreVersion:
    client = node.env.redis()
    try:
        return StoreVersion.from_fields(text_fields(client.hgetall(node.keys.node)))
    finally:
        client.close()


def programmed(node: SimNode, v: StoreVersion) -> bool:
    record = node.agent_record()
    return record.ready and record.programmed.same_write(v)


def table(node: SimNode, n: int) -> str:
    return nx.run(["ip", "netns", "exec", node.netns, "ip", "route", "show", "table", str(n)],
                  check=False)


def eni_of(node: SimNode, ip: str) -> int:
    for eni in node.view()["enis"]:
        if ip in eni["secondary_ips"]:
            return int(eni["device_index"])
    raise AssertionError(f"{ip} is on no ENI of {node.name}")


def detach(node: SimNode, device_index: int) -> None:
    eni_id = node.eni_view(device_index)["eni_id"]
    desc = node.env.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])
    attachment = desc["NetworkInterfaces"][0]["Attachment"]["AttachmentId"]
    node.env.ec2.detach_network_interface(AttachmentId=attachment, Force=True)
    wait_for(lambda: all(e["device_index"] != device_index or e["status"] != "attached"
                         for e in node.view()["enis"]), 10, "the detach in EC2")
    node.env.vpc.sync()  # the hypervisor unplugs the NIC


def wake(node: SimNode) -> None:
    client = node.env.redis()
    try:
        client.publish(node.keys.changed_channel, "test")
    finally:
        client.close()


def pod_on(env: SimEnv, rt: PodRuntime, name: str) -> Pod:
    pod = env.new_pod(rt, name)
    rt.add(pod)
    return pod


@pytest.fixture
def control(sim_env: SimEnv, kube_emulator: KubeEmulator, kubeconfig_path: Path) -> Iterator[ControlContext]:
    settings = Settings(
        cluster_name=sim_env.cluster,
        redis_url=sim_env.redis_server.url,
        ec2_endpoint_url=sim_env.emu.endpoint_url,
        kubeconfig=str(kubeconfig_path),
    )
    ctx = ControlContext.from_settings(settings)
    try:
        yield ctx
    finally:
        ctx.state.redis.close()


def paused(agent: AgentProcess) -> _Paused:
    return _Paused(agent)


class _Paused:
    """SIGSTOP the agent (a slow or stalled agent) for the block; SIGCONT after."""

    def __init__(self, agent: AgentProcess) -> None:
        assert agent.proc is not None and agent.alive()
        self.pid = agent.proc.pid

    def __enter__(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def __exit__(self, *exc: object) -> None:
        os.kill(self.pid, signal.SIGCONT)


def test_an_eni_of_running_pods_lost_by_redis_stays_while_metadata_lists_it(sim_env: SimEnv) -> None:
    a = sim_env.add_node("node-a", subnet_index=0)
    a.attach_eni(subnet_index=1, device_index=1, ip_count=2)
    agent = sim_env.agent(a).start()
    v1 = write(a)
    wait_for(lambda: programmed(a, v1), 30, "agent programmed the first write")
    rt = agent.runtime()
    pod = pod_on(sim_env, rt, "p1")
    assert eni_of(a, pod.ip) == 1  # the primary ENI has no secondary IP: ENI1 serves pods
    gateway = "10.0.16.1"
    assert nx.ping(pod.netns_name, gateway)
    rules_before = nx.ip(a.netns, "rule")
    assert f"from {pod.ip} lookup 101" in rules_before

    # A write that lost ENI1 (e.g. a failover promoted a replica without it): EC2 and the
    # instance's metadata still have it attached, and a pod uses it.
    v2 = write(a, skip=(1,))
    wait_for(lambda: programmed(a, v2), 15, "agent followed the new write")
    assert "default via 10.0.16.1 dev eth1" in table(a, 101), "the table of ENI1 was unprogrammed"
    assert f"from {pod.ip} lookup 101" in nx.ip(a.netns, "rule")
    assert nx.ping(pod.netns_name, gateway)
    rt.check(pod)
    assert "still attached" in agent.log()  # it said why it kept the ENI

    # Gone in EC2 too: detached, metadata no longer lists it, the link is unplugged.
    detach(a, 1)
    wake(a)
    wait_for(lambda: table(a, 101).strip() == "", 15, "table 101 removed once ENI1 is gone")
    assert agent.alive()


def test_a_redis_record_contradicting_metadata_does_not_repoint_running_pods(sim_env: SimEnv) -> None:
    a = sim_env.add_node("node-a", subnet_index=0)
    eni1 = a.attach_eni(subnet_index=1, device_index=1, ip_count=2)
    agent = sim_env.agent(a).start()
    v1 = write(a)
    wait_for(lambda: programmed(a, v1), 30, "agent programmed the first write")
    rt = agent.runtime()
    pod = pod_on(sim_env, rt, "p1")
    assert eni_of(a, pod.ip) == 1

    # A corrupted or stale record: ENI1 with another MAC (no such link; metadata names
    # the real MAC as ENI1). Followed, it would unprogram ENI1's table.
    records = [r if r.eni_id != eni1 else replace(r, mac="0a:ff:ff:ff:ff:01") for r in a.records()]
    client = sim_env.redis()
    try:
        state = ControlState(client, sim_env.cluster)
        with state.locked(a.name) as token:
            state.write_node(a.name, {"phase": "provisioned"}, records, lock_token=token)
    finally:
        client.close()
    v2 = version(a)
    wait_for(lambda: programmed(a, v2), 15, "agent followed the new write")
    assert "default via 10.0.16.1 dev eth1" in table(a, 101), "ENI1 was re-pointed by Redis"
    assert nx.ping(pod.netns_name, "10.0.16.1")
    rt.check(pod)
    assert agent.alive()


def test_after_flushall_an_agent_report_of_the_old_history_is_no_proof(
    sim_env: SimEnv, control: ControlContext, kube_emulator: KubeEmulator
) -> None:
    a = sim_env.add_node("node-a", subnet_index=0)
    a.attach_eni(subnet_index=1, device_index=1, ip_count=2)
    taint = [{"key": NOT_READY_TAINT, "effect": "NoSchedule"}]
    kube_emulator.add_node(a.name, provider_id=f"aws:///us-east-1a/{a.instance_id}", taints=taint)
    agent = sim_env.agent(a).start()
    for _ in range(3):
        old = write(a)
    wait_for(lambda: programmed(a, old), 30, "agent programmed generation 3")
    rt = agent.runtime()
    pod = pod_on(sim_env, rt, "p1")

    client = sim_env.redis()
    try:
        client.flushall()
        # The agent re-reports what it programmed (Redis is empty: it keeps serving).
        wait_for(lambda: a.agent_record().generation == old.generation, 15, "the agent's report")
        with paused(agent):
            new = write(a)  # a new history: generation 1 again
            assert not node_ready(control, a.name), "a report of the old history was taken as proof"
            assert new.generation == 1 and new.epoch and new.epoch != old.epoch
            assert NOT_READY_TAINT in {t["key"] for t in kube_emulator.get_node(a.name)["spec"]["taints"]}
        wait_for(lambda: programmed(a, new), 15, "agent programmed the new history")
        assert node_ready(control, a.name)
    finally:
        client.close()
    assert nx.ping(pod.netns_name, "10.0.16.1")
    rt.check(pod)


def test_a_rolled_back_store_is_detected_and_disturbs_no_running_pod(
    sim_env: SimEnv, control: ControlContext, kube_emulator: KubeEmulator
) -> None:
    a = sim_env.add_node("node-a", subnet_index=0)
    a.attach_eni(subnet_index=1, device_index=1, ip_count=1)
    taint = [{"key": NOT_READY_TAINT, "effect": "NoSchedule"}]
    kube_emulator.add_node(a.name, provider_id=f"aws:///us-east-1a/{a.instance_id}", taints=taint)
    agent = sim_env.agent(a).start()
    v1 = write(a)
    wait_for(lambda: programmed(a, v1), 30, "agent programmed the first write")
    client = sim_env.redis()
    try:
        older = {k: client.dump(k) for k in (a.keys.node, a.keys.enis)}  # a replica lagging here

        a.attach_eni(subnet_index=0, device_index=2, ip_count=2)
        v2 = write(a)
        wait_for(lambda: programmed(a, v2), 30, "agent programmed ENI2")
        rt = agent.runtime()
        p1, p2 = pod_on(sim_env, rt, "p1"), pod_on(sim_env, rt, "p2")
        assert (eni_of(a, p1.ip), eni_of(a, p2.ip)) == (1, 2)

        # The store goes back to the older state of the same history (the replica is
        # promoted without the last writes) while the agent is stalled...
        with paused(agent):
            for key, raw in older.items():
                assert raw is not None
                client.restore(key, 0, raw, replace=True)
            assert version(a).generation == v1.generation
            # ... and the control plane writes again from what it holds.
            v3 = write(a, skip=(2,))
            assert not node_ready(control, a.name), "the agent's report of a lost write was taken as proof"
            assert v3.epoch != v2.epoch, "the rollback did not start a new epoch"
        wait_for(lambda: programmed(a, v3), 15, "agent programmed the new epoch")
        assert node_ready(control, a.name)
        assert "default via 10.0.0.1 dev eth2" in table(a, 102), "ENI2 of a running pod was unprogrammed"
        for pod in (p1, p2):
            assert nx.ping(pod.netns_name, "10.0.0.1"), f"{pod.name} lost its network"
            rt.check(pod)

        # Rolled back within one history while the agent runs: it notices (its mark is
        # newer than the store) and says so; the next write starts another epoch.
        older3 = {k: client.dump(k) for k in (a.keys.node, a.keys.enis)}
        v3b = write(a, skip=(2,))
        wait_for(lambda: programmed(a, v3b), 15, "agent programmed the next write")
        for key, raw in older3.items():
            assert raw is not None
            client.restore(key, 0, raw, replace=True)
        wake(a)
        wait_for(lambda: AgentRecord.from_redis(client.hgetall(a.keys.agent)).rollback == v3.epoch,
                 15, "the agent reporting the rollback")
        v4 = write(a)
        assert v4.epoch not in (v1.epoch, v3.epoch)
        wait_for(lambda: programmed(a, v4), 15, "agent programmed the rotated epoch")
        assert node_ready(control, a.name)

        # Restored to a state of a history the agent already left (a backup from before
        # a rotation): a rollback too, not a new history.
        for key, raw in older.items():
            assert raw is not None
            client.restore(key, 0, raw, replace=True)
        wake(a)
        wait_for(lambda: AgentRecord.from_redis(client.hgetall(a.keys.agent)).rollback == v1.epoch,
                 15, "the agent reporting the restored old history")
    finally:
        client.close()
    assert "default via 10.0.0.1 dev eth2" in table(a, 102)
    for pod in (p1, p2):
        assert nx.ping(pod.netns_name, "10.0.0.1"), f"{pod.name} lost its network"
        rt.check(pod)
    v5 = write(a)
    assert v5.epoch not in (v1.epoch, v3.epoch, v4.epoch)
    wait_for(lambda: programmed(a, v5), 15, "agent programmed the rotated epoch")
    assert node_ready(control, a.name)


def test_during_a_rollback_ips_ec2_took_back_do_not_return_to_the_pool(sim_env: SimEnv) -> None:
    a = sim_env.add_node("node-a", subnet_index=0)
    eni1 = a.attach_eni(subnet_index=1, device_index=1, ip_count=3)
    agent = sim_env.agent(a).start()
    v1 = write(a)
    wait_for(lambda: programmed(a, v1), 30, "agent programmed the first write")
    assert a.agent_record().free == 3
    client = sim_env.redis()
    try:
        older = {k: client.dump(k) for k in (a.keys.node, a.keys.enis)}
        # A warm trim gives one IP back to EC2 (which may hand it to another node).
        taken = a.eni_view(1)["secondary_ips"][-1]
        sim_env.ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni1, PrivateIpAddresses=[taken])
        v2 = write(a)
        wait_for(lambda: programmed(a, v2) and a.agent_record().free == 2, 15, "the pool shrunk")

        # The store goes back to before the trim: its record still lists the IP.
        for key, raw in older.items():
            assert raw is not None
            client.restore(key, 0, raw, replace=True)
        wake(a)
        wait_for(lambda: a.agent_record().rollback == v1.epoch, 15, "the agent reporting the rollback")
        assert a.agent_record().free == 2, "an IP EC2 took back is in the pool again"
        rt = agent.runtime()
        pods = [pod_on(sim_env, rt, f"p{i}") for i in range(2)]
        assert taken not in {p.ip for p in pods}
    finally:
        client.close()
