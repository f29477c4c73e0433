"""``vpcnet bench cni|storm``: each benchmark module defines ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

_BENCHMARKS = ("vpcnet.bench.cni", "vpcnet.bench.storm")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("bench", help="run a benchmark")
    benches = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for modname in _BENCHMARKS:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name and modname.startswith(e.name):
                continue  # benchmark not built yet
            raise
        mod.register(benches)
