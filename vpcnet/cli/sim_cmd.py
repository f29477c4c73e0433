"""``vpcnet sim ec2|kube``: run an emulator standalone (for compose, demo and debugging)."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

# each module defines register(subparsers) for its emulator
_EMULATORS = ("vpcnet.sim.ec2.cli", "vpcnet.sim.kube.cli")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("sim", help="run an emulator standalone")
    sims = parser.add_subparsers(dest="sim", metavar="EMULATOR", required=True)
    for modname in _EMULATORS:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name and modname.startswith(e.name):
                continue  # emulator not built yet
            raise
        mod.register(sims)
