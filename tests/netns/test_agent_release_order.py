"""Invariant 8 with the real agent: ``release-ok`` names an IP only once the agent's
checkpoint on disk holds it as released, so an agent that crashes in between and
restarts from its checkpoint never hands out an IP the control plane is giving back.

The checkpoint lives on a small tmpfs of its own that the test fills up: the agent's
checkpoint write then fails (ENOSPC, as a full node disk would) while Redis works. The
agent is killed with SIGKILL (no final write) and restarted with Redis down, so that it
serves from its checkpoint alone, as after a crash in the window.

The second test also prints the time from ``release-req`` to ``release-ok`` (no timing
assertion: the number is for the report).
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.fixtures.netns import AgentProcess, SimEnv, SimNode, wait_for
from vpcnet.agent.checkpoint import Checkpoint
from vpcnet.agent.pools import NodePools
from vpcnet_sim.runtime import CniError, Pod, PodRuntime

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB filesystem for the agent's checkpoint, unmounted at teardown."""
    where = tmp_path / "ckpt"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(where)],
                   check=True, timeout=10)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, timeout=10)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk``; the file to delete to give them back."""
    blob = disk / "fill"
    with open(blob, "wb", buffering=0) as f:  # unbuffered: nothing left to flush at close
        try:
            while True:
                f.write(b"\0" * 4096)  # tmpfs allocates whole pages
        except OSError:
            pass
    return blob


def release_ok(node: SimNode) -> set[str]:
    client = node.env.redis()
    try:
        return {m.decode() for m in client.smembers(node.keys.release_ok)}
    finally:
        client.close()


def confirmed(node: SimNode, ip: str) -> bool:
    return ip in release_ok(node)


def ask_back(node: SimNode, ip: str) -> None:
    """What the control plane does: ``release-req`` and a ``changed`` message."""
    client = node.env.redis()
    try:
        client.sadd(node.keys.release_req, ip)
        client.publish(node.keys.changed_channel, "release-req")
    finally:
        client.close()


def try_add(rt: PodRuntime, pod: Pod) -> bool:
    try:
        rt.add(pod)
    except CniError as e:
        assert e.code == 11, e  # "try again later" while the agent starts
        return False
    return True


def crash(agent: AgentProcess) -> None:
    """SIGKILL: no final checkpoint write, no final mirror flush."""
    assert agent.proc is not None
    agent.proc.kill()
    agent.proc.wait(10)


def restart_without_redis(sim_env: SimEnv, agent: AgentProcess, names: list[str]) -> list[Pod]:
    """Restart the agent with Redis down (it serves from its checkpoint and cannot see
    ``release-req`` again) and ADD one pod per name; the pods that got an IP."""
    sim_env.redis_server.stop()
    try:
        agent.start()
        wait_for(agent.conflist_path.exists, 30, "the restarted agent's conflist")
        rt = agent.runtime()
        pods = [sim_env.new_pod(rt, name) for name in names]
        wait_for(lambda: try_add(rt, pods[0]), 30, "ADD on the restarted agent without Redis")
        got = [pods[0]]
        for pod in pods[1:]:
            try:
                rt.add(pod)
            except CniError as e:
                assert "no free IP" in str(e.error), e
                continue
            got.append(pod)
        return got
    finally:
        sim_env.redis_server.start()


def test_release_ok_is_not_published_while_the_checkpoint_holding_it_cannot_be_written(
    sim_env: SimEnv, small_disk: Path
) -> None:
    node = sim_env.add_node("node-a", subnet_index=0)
    node.attach_eni(subnet_index=1, device_index=1, ip_count=3)
    agent = sim_env.agent(node, VPCNET_AGENT_CHECKPOINT_PATH=str(small_disk / "checkpoint.json"),
                          VPCNET_AGENT_RESYNC_SECONDS="600").start()
    agent.wait_ready(node.publish_state())
    pool = set(node.eni_view(1)["secondary_ips"])
    asked = sorted(pool)[0]

    blob = fill(small_disk)
    ask_back(node, asked)
    # The pass that confirmed the release failed writing its checkpoint, and said so.
    wait_for(lambda: "cannot write checkpoint" in node.agent_hash().get("error", ""), 20,
             "the agent's report of the failed checkpoint write")
    assert asked not in release_ok(node)

    crash(agent)
    blob.unlink()
    pods = restart_without_redis(sim_env, agent, ["p1", "p2", "p3"])
    held = {pod.ip for pod in pods}
    # The last durable checkpoint has the IP in the pool, so the restarted agent hands it
    # out; the control plane was never told it is unused, so EC2 still gives it the node.
    assert held == pool
    assert not held & release_ok(node)


def test_release_ok_follows_the_durable_checkpoint_and_a_restart_keeps_those_ips_out(
    sim_env: SimEnv,
) -> None:
    node = sim_env.add_node("node-a", subnet_index=0)
    node.attach_eni(subnet_index=1, device_index=1, ip_count=8)
    agent = sim_env.agent(node, VPCNET_AGENT_RESYNC_SECONDS="600").start()
    agent.wait_ready(node.publish_state())
    pool = sorted(node.eni_view(1)["secondary_ips"])
    asked, kept = pool[:6], pool[6:]
    checkpoint = Checkpoint(agent.env["VPCNET_AGENT_CHECKPOINT_PATH"])

    latencies = []
    for ip in asked:
        start = time.monotonic()
        ask_back(node, ip)
        wait_for(partial(confirmed, node, ip), 10, f"{ip} in release-ok", interval=0.001)
        latencies.append(time.monotonic() - start)
        # Whatever release-ok says, the checkpoint on disk said first.
        on_disk = checkpoint.load()
        assert on_disk is not None
        assert ip in {str(released) for released in NodePools.from_checkpoint(on_disk).ipam.released()}
    print(f"\nrelease-req -> release-ok, real agent, {len(latencies)} releases: "
          f"median {statistics.median(latencies) * 1000:.1f} ms, "
          f"min {min(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")

    crash(agent)
    pods = restart_without_redis(sim_env, agent, ["q1", "q2", "q3"])
    assert sorted(pod.ip for pod in pods) == kept  # the third ADD found no free IP
