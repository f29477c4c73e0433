"""Redis unreachable for 60 s: pods come and go on ready nodes all along, then it all
reconciles (audit clean, every agent's Redis mirror equal to its checkpoint)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from vpcnet.embedded.chaos import ChaosOptions, ChaosReport, ChaosWorld, TrackedPod
from vpcnet.sim.netns import ping

OUTAGE_SECONDS = 60.0


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

        world.stack.redis.stop()
        down_at = time.monotonic()
        adds = dels = pings = 0
        during: list[TrackedPod] = []
        rounds = 0
        while time.monotonic() - down_at < OUTAGE_SECONDS:
            rounds += 1
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
        world.stack.redis.start()
        world.standin_driver.churn = False
        world.long_running += during  # they must keep their IPs through the reconcile

        problems, violations = world.wait_converged(120)
        report = ChaosReport()
        world.verify_long_running(report)
        with capsys.disabled():
            print("\nredis outage:", json.dumps({
                "seconds_down": round(seconds_down, 1), "adds": adds, "dels": dels,
                "pings": pings, "standin": world.tally.snapshot(),
                "unexpected_exits": world.unexpected.snapshot(), "exit_notes": world.exit_notes,
            }))
        assert seconds_down >= OUTAGE_SECONDS
        assert adds >= 20 and dels >= 15
        assert problems == [] and violations == [], (problems, violations)
        assert report.ip_changed == [] and report.check_failed == [] and report.ping_failed == []
        assert world.tally.snapshot().get("standin-assign", 0) > 0
        # Workers, beat and the watcher ride out the outage; nothing needed a restart.
        assert world.unexpected.snapshot() == {}, world.exit_notes
        assert world.secrets_in_logs() == []
