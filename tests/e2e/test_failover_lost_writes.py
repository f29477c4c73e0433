"""Redis Sentinel failover that loses acknowledged writes, during a join storm and pod churn.

The whole embedded stack (watcher, two Celery worker processes, beat, netns nodes with
real agents and pods made through the real plugin, API-only nodes with stand-in agents)
runs on a Sentinel group: every component connects through ``redis+sentinel://``, the
broker and result backend through kombu's sentinel transport. While nodes join and pods
come and go, the replica's link is cut, the system writes on to the primary for a few
seconds (acknowledged, never replicated), the primary is frozen and the sentinels
promote the replica (``vpcnet_sim.embedded.sentinel`` says exactly how). The test checks
that writes really were lost, then that the system converges with no restart of any
component: every node ready, the audit clean (it sees leaked ENIs), no unattached ENI,
each mirror equal to its agent's checkpoint, no IP held twice, every long-running pod
on its IP, passing CHECK and pinging every other, new pods working. The broker's
visibility timeout is left at its production value (1 h): nothing may wait for it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from vpcnet.limits import bundled_limits
from vpcnet.ops.collect import collect
from vpcnet_sim.embedded.chaos import ChaosOptions, ChaosReport, ChaosWorld
from vpcnet_sim.embedded.sentinel import SentinelGroup
from vpcnet_sim.netns import ping

pytestmark = pytest.mark.timeout(900)

PRODUCTION_BROKER = {"VPCNET_BROKER_VISIBILITY_TIMEOUT_SECONDS": "3600",
                     "VPCNET_TASK_TIME_LIMIT_SECONDS": "300"}


def test_lossy_failover_during_a_join_storm_and_pod_churn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = ChaosWorld(ChaosOptions(workdir=tmp_path / "fo", cluster="fo", churn_pods=2),
                       control_env=PRODUCTION_BROKER)
    group = SentinelGroup(tmp_path / "fo" / "redis", password=world.redis_password)
    world.stack.redis = group  # the stack's Redis, as every component reaches it
    with world.running():
        assert world.stack.control_settings().redis_url.startswith("redis+sentinel://")
        world.launch_netns_nodes(2)
        world.launch_api_nodes(4)
        world.wait_ready(world.node_names(), 150)
        for node in world.netns_nodes:
            world.long_running += world.create_pods(node, 3, "long")
        world.start_churn()
        time.sleep(2)

        # The join storm: 16 more nodes; the failover strikes while they provision.
        joining = world.launch_api_nodes(16, first_index=4)
        client = group.client()
        try:
            deadline = time.monotonic() + 30
            while not any(client.hget(world.stack.keys.node(n.name).node, "phase")
                          for n in joining):
                assert time.monotonic() < deadline, "no joining node reached Redis"
                time.sleep(0.05)
        finally:
            client.close()
        failover = group.lose_writes_in_failover(window=3.0, cluster_prefix="vpcnet:{fo")
        world.faults.add("sentinel-failover-lost-writes")
        # The writes were acknowledged and are gone from every server.
        assert failover.marker_acked_replicas == 0
        assert not failover.marker_on_new_primary and not failover.marker_on_old_primary
        assert failover.keys_lost_or_stale > 0 and failover.unreplicated_bytes > 0
        time.sleep(3)  # pods keep churning on the new primary
        world.stop_churn()

        t0 = time.monotonic()
        problems, violations = world.wait_converged(240)
        converged = time.monotonic() - t0
        assert problems == [] and violations == [], (problems, violations)

        # Every node has exactly its type's ENIs: none created twice, none leaked.
        per_instance = {v["instance_id"]: len(v.get("enis", []))
                        for v in world.stack.ec2.instances_view()}
        for node in [*world.netns_nodes, *world.api_nodes]:
            limits = bundled_limits(node.instance_type)
            assert limits is not None
            assert per_instance[node.instance_id] == limits.max_enis, node.name

        # No IP held twice, cluster-wide (Redis' mirrors of every agent).
        seen = Counter(str(ip) for held in collect(world.stack.control_settings()).assigned.values()
                       for ip in held)
        assert [ip for ip, n in seen.items() if n > 1] == []

        # Long-running pods kept their IPs, pass CHECK and reach each other.
        report = ChaosReport()
        world.verify_long_running(report)
        assert report.ip_changed == [] and report.check_failed == [] and report.ping_failed == []

        # New pods get addresses nobody holds, and work.
        in_use = {p.ip for p in world.live_pods()}
        fresh = [p for node in world.netns_nodes for p in world.create_pods(node, 3, "after")]
        ips = [p.ip for p in fresh]
        assert len(set(ips)) == len(ips) and not set(ips) & in_use
        a, b = fresh[0], fresh[-1]
        assert a.node != b.node and ping(a.pod.netns_name, b.ip, count=1, timeout=3)
        world.long_running += fresh
        problems, violations = world.wait_converged(90)
        assert problems == [] and violations == [], (problems, violations)

        counts = world.tally.snapshot()
        with capsys.disabled():
            print("\nsentinel lost-write failover:", json.dumps({
                "failover_seconds": failover.failover_seconds,
                "unreplicated_bytes": failover.unreplicated_bytes,
                "keys_lost_or_stale": failover.keys_lost_or_stale,
                "converged_seconds": round(converged, 1),
                "nodes": len(world.node_names()), "pods": counts,
                "add_failures": world.add_failures.snapshot(),
                "worker_broker_loss_crashes": world.known_crash_report()[0],
                "unexpected_exits": world.unexpected.snapshot(),
            }))
        assert counts.get("churn-add-failed", 0) == 0 and counts.get("churn-del-failed", 0) == 0
        assert counts["churn-add"] > 0 and counts.get("standin-assign", 0) > 0
        # No component restarted: neither a crash nor Celery's known broker-loss exit.
        assert world.unexpected.snapshot() == {} and world.known_crashes == []
        assert world.secrets_in_logs() == []
