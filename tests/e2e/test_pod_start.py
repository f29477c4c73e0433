"""Pod start never fails for an IP that is coming (issue 13, deliverable 1).

The whole system for real: the embedded stack (Redis, watcher, Celery workers and beat,
the EC2 emulator with AWS latencies), one node with its real agent in a network
namespace, and the installed plugin exec'd as a runtime does. No time is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from vpcnet_sim.bench.burst import ready_node, run_burst

NO_FREE_IPS = "vpcnet.io/no-free-ips"


def test_adds_inside_the_cooldown_succeed_once_ips_leave_it(tmp_path: Path) -> None:
    # t3.small in full mode: 9 pod IPs. 6 ADDs, their DELs, 6 ADDs again: 3 IPs are free,
    # the other 3 ADDs must wait for the first IPs to leave the 6 s cooldown.
    result = run_burst(6, "full", "t3.small", 0, 6.0, tmp_path)
    assert result.first.failed == {} and result.second.failed == {}, result.summary()["errors"]
    # Full mode never grows: nothing was asked of EC2 for these pods.
    assert "AssignPrivateIpAddresses" not in result.ec2_calls, result.ec2_calls


def test_a_node_at_its_limits_fails_fast_saying_so_and_status_agrees(tmp_path: Path) -> None:
    with ready_node("full", "t3.small", 0, 600.0, tmp_path) as node:
        stats, _ = node.burst(8, "a")
        assert stats.failed == {}, stats.errors
        assert node.status() == (0, "")  # one IP is still free
        stats, _ = node.burst(1, "b")
        assert stats.failed == {}, stats.errors
        code, message = node.status()
        assert code == 50 and "ENI and IP limits reached" in message, message
        stats, _ = node.burst(1, "c")
        assert stats.failed == {"11": 1}, stats
        # Failed at once (the budget's timeout says "no IP came within the ADD's budget"),
        # naming why nothing can come.
        assert "none can come: ENI and IP limits reached" in stats.errors[0], stats.errors

        def tainted() -> bool:
            return NO_FREE_IPS in node.taints()

        deadline = time.monotonic() + 60
        while not tainted():  # the warm-pool scan (beat, every 10 s) applies it
            assert time.monotonic() < deadline, "no-free-ips taint never applied"
            time.sleep(0.5)


def test_bench_burst_warm_mode_grows_the_pool_in_one_assign(tmp_path: Path) -> None:
    # warm target 2 on a c5.xlarge (14 slots on the primary ENI): a burst of 6 waits for
    # the control plane, which assigns the whole shortfall in one call.
    vpcnet = str(Path(sys.executable).with_name("vpcnet"))
    proc = subprocess.run(
        [vpcnet, "bench", "burst", "--pods", "6", "--mode", "warm", "--warm-ip-target", "2",
         "--instance-type", "c5.xlarge", "--cooldown", "10", "--json"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("add_wall_ms", "add_p50_ms", "add_p99_ms", "failed", "ec2_calls",
                "ref_add_wall_ms", "wall_ratio"):
        assert key in result, key
    assert result["failed"] == {}, result["errors"]
    assert result["ec2_calls_first"].get("AssignPrivateIpAddresses") == 1, result["ec2_calls_first"]
    assert "CreateNetworkInterface" not in result["ec2_calls_first"], result["ec2_calls_first"]
