"""`vpcnet bench storm` at a small size: it runs the real control plane and reports
every field the issue asks for (it measures; nothing here asserts a time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.unit.storm_minimums import MIN_CALLS

NODES = 8
REQUIRED = {
    "nodes", "nodes_ready", "seconds", "lower_bound_seconds", "ratio", "ec2_calls_per_node",
    "min_ec2_calls_per_node", "throttled_surfaced", "leaked_enis", "duplicate_ips",
    "lower_bound_at_share_seconds", "ratio_at_share", "p50_of_total", "scan_worker_concurrency",
}


def test_storm_small_full_mode(tmp_path: Path) -> None:
    vpcnet = str(Path(sys.executable).with_name("vpcnet"))
    plot = tmp_path / "storm.png"
    proc = subprocess.run(
        [vpcnet, "bench", "storm", "--nodes", str(NODES), "--instance-type", "m5.large",
         "--latency", "fast", "--json", "--plot", str(plot), "--timeout", "180"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert REQUIRED <= set(result)
    assert result["nodes"] == result["nodes_ready"] == NODES
    assert result["leaked_enis"] == 0 and result["duplicate_ips"] == 0
    assert result["throttled_surfaced"] == 0
    # The minimum the storm's bound is computed from is the hand-written one.
    minimum = MIN_CALLS[("m5.large", "full")]
    assert result["min_calls_by_action"] == minimum
    assert result["min_ec2_calls_per_node"] == sum(minimum.values()) == 8
    # No join did less than that minimum (a pass that skipped a call would leave a node short).
    for action, n in minimum.items():
        assert result["ec2_calls"].get(action, 0) >= NODES * n, (action, result["ec2_calls"])
    assert result["lower_bound_seconds"] >= 0 and plot.stat().st_size > 0
    # node_ready ran on the scan queue's own worker, as the Deployment runs it.
    assert result["scan_worker_concurrency"] >= 1 and "worker-scan" in result["peak_rss_mb"]


def test_storm_small_prefix_mode_time_scaled(tmp_path: Path) -> None:
    """Prefix mode at AWS's latencies and buckets on a clock 10x faster: the bound is the
    prefix chain (DescribeInstances -> AssignPrivateIpAddresses) on that clock, not the
    full-mode ENI chain."""
    vpcnet = str(Path(sys.executable).with_name("vpcnet"))
    proc = subprocess.run(
        [vpcnet, "bench", "storm", "--nodes", str(NODES), "--instance-type", "m5.large",
         "--mode", "prefix", "--latency", "aws", "--time-scale", "10", "--json",
         "--timeout", "180"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert REQUIRED | {"p50_node_seconds", "p99_node_seconds", "aws_equivalent_seconds"} <= set(result)
    assert result["nodes_ready"] == NODES and result["time_scale"] == 10.0
    # 8 joins fit in every bucket: the bound is one node's chain, (0.07 + 0.14) s / 10.
    assert result["one_node_chain_seconds"] == round((0.1 + 0.2) * 0.7 / 10, 3)
    assert abs(result["lower_bound_seconds"] - result["one_node_chain_seconds"]) < 1e-3
    assert result["min_calls_by_action"] == MIN_CALLS[("m5.large", "prefix")]
    assert result["throttled_by_ec2"] == 0 and result["leaked_enis"] == 0
    # 8 joins fit in every bucket even at the default share: both bounds are the chain.
    assert result["lower_bound_at_share_seconds"] == result["lower_bound_seconds"]
    assert result["ratio_at_share"] == result["ratio"]
