"""``vpcnet demo``: the whole system on this machine (see vpcnet_sim.embedded.demo)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# vpcnet_sim.embedded.stack.KUBE_SERVERS (not imported here: the CLI loads every command)
KUBE_SERVERS = ("emulator", "apiserver")
# vpcnet.domain.IpFamily's values (same reason)
IP_FAMILIES = ("ipv4", "ipv6", "dual")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo", help="run the embedded default end to end (no AWS account, no cluster)"
    )
    parser.add_argument("--keep", action="store_true", help="leave it running; print the Flower URL")
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary")
    parser.add_argument("--workdir", type=Path, default=None, help="where logs and state go")
    parser.add_argument(
        "--kube",
        choices=KUBE_SERVERS,
        default="emulator",
        help="the Kubernetes to run on: the built-in emulator (fast) or a real etcd + "
        "kube-apiserver v1.37.2, built from Go modules first if not cached (minutes, once)",
    )
    parser.add_argument(
        "--ip-family",
        choices=IP_FAMILIES,
        default="ipv4",
        help="the pods' address families: IPv4 (SNAT'd out of the VPC), IPv6 from a /80 "
        "per node (no NAT), or dual (one of each); the connectivity matrix is per family",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vpcnet_sim.embedded.demo import Demo
    from vpcnet_sim.embedded.procs import unwind_on_sigterm

    unwind_on_sigterm()
    # no emoji codes: an IPv6 address such as 2001:db8:0:100:1::1 holds ":100:"
    console = Console(stderr=bool(args.json), emoji=False)
    console.width = max(console.width, 120)  # the tables are wide; pipes default to 80
    demo = Demo(console, keep=args.keep, as_json=args.json, workdir=args.workdir, kube=args.kube,
                ip_family=args.ip_family)
    return demo.run()
