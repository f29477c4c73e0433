"""``vpcnet bench cni|storm|burst``: the benchmarks (see docs/benchmarks.md)."""

from __future__ import annotations

from typing import Any

from vpcnet.cli.group import register_group


def register(sub: Any) -> None:
    register_group(sub, "bench", "run a benchmark", "BENCHMARK",
                   ("vpcnet.bench.cni", "vpcnet.bench.storm", "vpcnet.bench.burst"))
