"""``vpcnet sim ec2|kube``: run an emulator standalone (for compose, demo and debugging)."""

from __future__ import annotations

from typing import Any

from vpcnet_sim.cli.group import register_group


def register(sub: Any) -> None:
    register_group(sub, "sim", "run an emulator standalone", "EMULATOR",
                   ("vpcnet_sim.ec2.cli", "vpcnet_sim.kube.cli"))
