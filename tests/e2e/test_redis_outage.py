"""Redis unreachable for 60 s: pods come and go on ready nodes all along, then it all
reconciles (audit clean, every agent's Redis mirror equal to its checkpoint).

That Redis really was unreachable is checked, not assumed: before every round of ADDs a
TCP connection to its port must be refused, and each agent must have logged mirror
writes it deferred because Redis refused them, during the outage.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime
from pathlib import Path

import pytest

from vpcnet_sim.embedded.chaos import ChaosOptions, ChaosReport, ChaosWorld, TrackedPod
from vpcnet_sim.embedded.stack import SimNode
from vpcnet_sim.netns import ping

OUTAGE_SECONDS = 60.0


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def deferred_mirror_writes(world: ChaosWorld, node: SimNode, start: float, end: float) -> int:
    """The agent's "mirror to Redis deferred" records with a refused connection between
    ``start`` and ``end`` (unix times), from its logs."""
    assert node.agent is not None
    count = 0
    for path in (node.agent.log_path, world.stack.log_dir / f"cni-{node.name}.log"):
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            event = str(rec.get("event", "")) if isinstance(rec, dict) else ""
            if not (event.startswith("mirror to Redis deferred") and "Connection refused" in event):
                continue
            at = datetime.fromisoformat(str(rec["timestamp"]).replace("Z", "+00:00")).timestamp()
            count += start <= at <= end
    return count


def test_pod_add_and_del_keep_working_through_a_60s_redis_outage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = ChaosWorld(ChaosOptions(workdir=tmp_path / "outage", cluster="outage"))
    with world.running():
        world.launch_netns_nodes(2)
        world.launch_api_nodes(3)
        world.wait_ready(world.node_names(), 120)
        for node in world.netns_nodes:
            world.long_running += world.create_pods(node, 2, "long")
        world.standin_driver.churn = True  # stand-ins keep taking and returning IPs too

        port = world.stack.redis.port
        assert not refuses_connections(port)
        world.redis_down()
        down_wall, down_at = time.time(), time.monotonic()
        adds = dels = pings = refused = 0
        during: list[TrackedPod] = []
        rounds = 0
        while time.monotonic() - down_at < OUTAGE_SECONDS:
            rounds += 1
            assert refuses_connections(port), f"Redis answered on port {port} during the outage"
            refused += 1
            for node in world.netns_nodes:
                runtime = world.runtime(node)
                (pod,) = world.create_pods(node, 1, f"outage{rounds}")
                adds += 1
                runtime.check(pod.pod)
                peer = next(p for p in world.long_running if p.node != node.name)
                assert ping(pod.pod.netns_name, peer.ip, count=1, timeout=3), (pod.ip, peer.ip)
                pings += 1
                during.append(pod)
            while len(during) > 4:  # keep a few; the rest go, as pods do
                gone = during.pop(0)
                world.unregister_pod(gone)
                world.runtime_by_name(gone.node).delete(gone.pod)
                world.runtime_by_name(gone.node).remove_netns(gone.pod)
                dels += 1
            time.sleep(1.0)
        seconds_down = time.monotonic() - down_at
        up_wall = time.time()
        deferred = {n.name: deferred_mirror_writes(world, n, down_wall, up_wall) for n in world.netns_nodes}
        world.redis_up()
        world.standin_driver.churn = False
        world.long_running += during  # they must keep their IPs through the reconcile

        problems, violations = world.wait_converged(120)
        report = ChaosReport()
        world.verify_long_running(report)
        with capsys.disabled():
            print("\nredis outage:", json.dumps({
                "seconds_down": round(seconds_down, 1), "adds": adds, "dels": dels,
                "pings": pings, "refused": refused, "deferred_mirror_writes": deferred,
                "standin": world.tally.snapshot(),
                "unexpected_exits": world.unexpected.snapshot(), "exit_notes": world.exit_notes,
            }))
        assert seconds_down >= OUTAGE_SECONDS
        assert refused == rounds > 0
        # Every agent saw Redis refuse it (and kept serving ADD/DEL from its checkpoint).
        assert all(n > 0 for n in deferred.values()), deferred
        assert adds >= 20 and dels >= 15
        assert problems == [] and violations == [], (problems, violations)
        assert report.ip_changed == [] and report.check_failed == [] and report.ping_failed == []
        assert world.tally.snapshot().get("standin-assign", 0) > 0
        # Workers, beat and the watcher ride out the outage; nothing needed a restart.
        assert world.unexpected.snapshot() == {}, world.exit_notes
        # A worker may have hit the known kombu crash in the outage; it must be just that.
        assert world.known_crash_report()[2] == []
        assert world.secrets_in_logs() == []
