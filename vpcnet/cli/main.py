"""The ``vpcnet`` console script: one entry point, subcommands registered by modules.

Each module in ``_COMMANDS`` defines ``register(subparsers)`` and sets ``func`` on its
parser; modules are imported lazily so that ``vpcnet agent`` never pays for boto3.

Other distributions add subcommands through the ``vpcnet.commands`` entry-point group
(name = subcommand, value = its ``register``): the harness (``vpcnet-sim``) adds ``demo``,
``chaos``, ``bench`` and ``sim`` that way, so the product package never imports it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

# subcommand -> module that registers it
_COMMANDS: dict[str, str] = {
    "watcher": "vpcnet.cli.watcher_cmd",
    "agent": "vpcnet.cli.agent_cmd",
    "status": "vpcnet.cli.status_cmd",
    "inspect": "vpcnet.cli.status_cmd",
    "audit": "vpcnet.cli.audit_cmd",
    "install-cni": "vpcnet.cli.install_cmd",
    "credentials": "vpcnet.cli.credentials_cmd",
}

# The entry-point group other distributions register subcommands in.
COMMAND_GROUP = "vpcnet.commands"
# The subcommands the harness registers, named here only to say how to get them.
HARNESS_COMMANDS = ("demo", "chaos", "bench", "sim")
HARNESS_MISSING = "vpcnet {command} needs the vpcnet-sim harness: pip install -e ./vpcnet_sim"


def _plugin_commands(only: str | None) -> list[EntryPoint]:
    # imported here: importlib.metadata alone costs ~25 ms, which product commands never pay
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=COMMAND_GROUP) if ep.name not in _COMMANDS]
    return [ep for ep in found if only is None or ep.name == only]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vpcnet", description="vpcnet: real VPC IP addresses for Kubernetes pods on AWS."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    seen: set[str] = set()
    for name, modname in _COMMANDS.items():
        if modname in seen or (only is not None and name != only):
            continue
        mod = importlib.import_module(modname)
        seen.add(modname)
        mod.register(sub)
    # Scanning installed distributions costs a few ms: never for a product command.
    if only is None or only not in _COMMANDS:
        for ep in _plugin_commands(only):
            register: Callable[[Any], None] = ep.load()
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Import only the module of the requested subcommand (fast start for agent/sim).
    first = argv[0] if argv else None
    only: str | None = None
    if first in _COMMANDS or (first is not None and _plugin_commands(first)):
        only = first
    elif first in HARNESS_COMMANDS:
        print(HARNESS_MISSING.format(command=first), file=sys.stderr)
        return 2
    parser = build_parser(only)
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
