"""Redis lost entirely (FLUSHALL) while nodes join and pods run and churn.

vpcnet must rebuild its state from EC2 (tags, attachments: the beat's reconcile) and the
agents' checkpoints (the agents re-mirror their assignments): every node ready again
with the ENIs it had (none created twice), the audit clean, each mirror equal to its
checkpoint, no running pod on another IP, and new pods getting addresses nobody holds.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from vpcnet.limits import bundled_limits
from vpcnet_sim.embedded.chaos import ChaosOptions, ChaosReport, ChaosWorld
from vpcnet_sim.netns import ping


def test_flushall_mid_join_is_rebuilt_from_ec2_and_the_agents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = ChaosWorld(ChaosOptions(workdir=tmp_path / "loss", cluster="loss", churn_pods=2),
                       flower=True)
    with world.running():
        _flower_requires_its_password(world)
        world.launch_netns_nodes(2)
        world.launch_api_nodes(4)
        world.wait_ready(world.node_names(), 120)
        for node in world.netns_nodes:
            world.long_running += world.create_pods(node, 3, "long")
        world.start_churn()
        time.sleep(3)  # assignments churn on the stand-ins and pods on the netns nodes

        # Four more nodes join; Redis is wiped while their provisioning is under way.
        joining = world.launch_api_nodes(4, first_index=4)
        client = world.stack.redis.client()

        def provisioning() -> bool:
            phases = [client.hget(world.stack.keys.node(n.name).node, "phase") for n in joining]
            return any(p is not None for p in phases)

        deadline = time.monotonic() + 30
        while not provisioning():
            assert time.monotonic() < deadline, "no joining node reached Redis"
            time.sleep(0.05)
        client.close()
        world.flush_redis()
        time.sleep(3)  # pods keep churning on an empty Redis
        world.stop_churn()

        problems, violations = world.wait_converged(150)
        assert problems == [] and violations == [], (problems, violations)

        # Rebuilt from EC2: each node has exactly its type's ENIs, none created twice.
        per_instance = {
            view["instance_id"]: len(view.get("enis", []))
            for view in world.stack.ec2.instances_view()
        }
        for node in [*world.netns_nodes, *world.api_nodes]:
            limits = bundled_limits(node.instance_type)
            assert limits is not None
            assert per_instance[node.instance_id] == limits.max_enis, node.name

        # No running pod changed IP; CHECK passes; they still reach each other.
        report = ChaosReport()
        world.verify_long_running(report)
        assert report.ip_changed == [] and report.check_failed == [] and report.ping_failed == []

        # New pods get addresses no running pod holds, and work.
        in_use = {p.ip for p in world.live_pods()}
        fresh = [p for node in world.netns_nodes for p in world.create_pods(node, 4, "after")]
        ips = [p.ip for p in fresh]
        assert len(set(ips)) == len(ips) and not set(ips) & in_use
        for pod in fresh:
            world.runtime_by_name(pod.node).check(pod.pod)
        a, b = fresh[0], fresh[-1]
        assert a.node != b.node and ping(a.pod.netns_name, b.ip, count=1, timeout=3)
        world.long_running += fresh
        problems, violations = world.wait_converged(60)
        assert problems == [] and violations == [], (problems, violations)

        counts = world.tally.snapshot()
        with capsys.disabled():
            print("\nredis loss:", json.dumps({
                "faults": world.faults.snapshot(), "pods": counts,
                "add_failures": world.add_failures.snapshot(),
                "unexpected_exits": world.unexpected.snapshot(),
            }))
        # Agents serve from their local pool: the loss costs no ADD or DEL.
        assert counts.get("churn-add-failed", 0) == 0 and counts.get("churn-del-failed", 0) == 0
        assert counts["churn-add"] > 0 and counts.get("standin-assign", 0) > 0
        assert world.unexpected.snapshot() == {}
        # Redis with a password, an AWS secret key, Flower's password: none in any log.
        assert world.secrets_in_logs() == []


def _flower_requires_its_password(world: ChaosWorld) -> None:
    url = f"{world.stack.flower_url}/api/workers"
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(url, timeout=10)
    assert denied.value.code == 401
    token = base64.b64encode(f"admin:{world.stack.flower_password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200
