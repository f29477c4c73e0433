"""The embedded stack's choice of Kubernetes: the emulator or the real apiserver, and a
clear error for anything else (before any process starts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpcnet_sim.cli.demo_cmd import KUBE_SERVERS as DEMO_CHOICES
from vpcnet_sim.embedded.stack import KUBE_SERVERS, StackOptions


def test_the_emulator_is_the_default() -> None:
    assert StackOptions(workdir=Path("/nonexistent")).kube == "emulator"


def test_an_unknown_server_is_refused() -> None:
    with pytest.raises(ValueError, match="kube must be one of emulator, apiserver, not 'k3s'"):
        StackOptions(workdir=Path("/nonexistent"), kube="k3s")


def test_the_demo_offers_exactly_the_stack_choices() -> None:
    assert DEMO_CHOICES == KUBE_SERVERS
