"""``vpcnet demo | chaos | bench | sim`` come from the harness through the
``vpcnet.commands`` entry points, not from the product's own command table."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from vpcnet.cli.main import _COMMANDS, COMMAND_GROUP, HARNESS_COMMANDS, build_parser

VPCNET = Path(sys.executable).with_name("vpcnet")


def test_harness_registers_the_commands_the_product_names() -> None:
    found = {ep.name: ep.value for ep in entry_points(group=COMMAND_GROUP)}
    assert set(found) == set(HARNESS_COMMANDS)
    assert all(value.startswith("vpcnet_sim.cli.") for value in found.values())
    assert not set(HARNESS_COMMANDS) & set(_COMMANDS)


def test_demo_help_through_the_entry_point() -> None:
    done = subprocess.run([VPCNET, "demo", "--help"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: vpcnet demo")


def test_full_parser_has_product_and_harness_commands() -> None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {*_COMMANDS, *HARNESS_COMMANDS}


def test_product_command_does_not_scan_entry_points() -> None:
    """``vpcnet agent`` starts as before: no distribution scan (importlib.metadata alone
    is ~25 ms of imports) for a command the product defines itself."""
    code = (
        "import sys\n"
        "from vpcnet.cli.main import build_parser\n"
        "build_parser('agent').parse_args(['agent'])\n"
        "print('importlib.metadata' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout == "False\n"
