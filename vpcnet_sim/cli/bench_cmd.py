"""``vpcnet bench cni|storm|burst``: the benchmarks (see docs/benchmarks.md)."""

from __future__ import annotations

from typing import Any

from vpcnet_sim.cli.group import register_group


def register(sub: Any) -> None:
    register_group(sub, "bench", "run a benchmark", "BENCHMARK",
                   ("vpcnet_sim.bench.cni", "vpcnet_sim.bench.storm", "vpcnet_sim.bench.burst"))
