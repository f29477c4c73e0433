"""``vpcnet audit``: check every invariant across EC2, Redis, Kubernetes and the agents.

Exit 0 when all hold; 1 with each violation named otherwise (2 when the world could not
be read at all)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("audit", help="check the invariants")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from vpcnet.errors import VpcnetError
    from vpcnet.ops.collect import run_audit
    from vpcnet.settings import Settings

    console = Console()
    try:
        violations = run_audit(Settings.from_env())
    except VpcnetError as e:
        if args.json:
            print(json.dumps({"ok": False, "error": str(e)}))
        else:
            console.print(f"[red]audit could not read the world:[/] {e}")
        return 2
    if args.json:
        print(json.dumps({"ok": not violations, "violations": [v.to_dict() for v in violations]}))
    elif not violations:
        console.print("[green]✓ every invariant holds[/]")
    else:
        table = Table(title=f"{len(violations)} violation(s)")
        for col in ("invariant", "kind", "subject", "detail"):
            table.add_column(col)
        for v in violations:
            table.add_row(str(v.invariant), v.kind, v.subject, v.detail)
        console.print(table)
    return 1 if violations else 0
