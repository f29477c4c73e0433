"""The ``vpcnet`` console script: one entry point, subcommands registered by modules.

Each module in ``_COMMANDS`` defines ``register(subparsers)`` and sets ``func`` on its
parser; modules are imported lazily so that ``vpcnet agent`` never pays for boto3.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# subcommand -> module that registers it
_COMMANDS: dict[str, str] = {
    "sim": "vpcnet.cli.sim_cmd",
    "watcher": "vpcnet.cli.watcher_cmd",
    "agent": "vpcnet.cli.agent_cmd",
    "demo": "vpcnet.cli.demo_cmd",
    "status": "vpcnet.cli.status_cmd",
    "inspect": "vpcnet.cli.status_cmd",
    "audit": "vpcnet.cli.audit_cmd",
    "bench": "vpcnet.cli.bench_cmd",
    "install-cni": "vpcnet.cli.install_cmd",
    "chaos": "vpcnet.cli.chaos_cmd",
    "credentials": "vpcnet.cli.credentials_cmd",
}


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Import only the module of the requested subcommand (fast start for agent/sim).
    only = argv[0] if argv and argv[0] in _COMMANDS else None
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
