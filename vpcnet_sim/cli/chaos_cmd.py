"""``vpcnet chaos``: the chaos run at the size you ask for (see vpcnet_sim.embedded.chaos).

Nodes join and pods churn while workers are ``kill -9``'d, Redis fails over losing
acknowledged writes (``--redis sentinel``, the default) or restarts (``--redis single``),
agents restart, EC2 answers with 5xx and throttling, and a hostile agent with one node's
credential keeps trying the other nodes' keys, the queues and the locks; then the faults stop and the system must
converge with every invariant holding and no long-running pod having changed its IP.
Exits 0 only then. ``--json`` prints one JSON object (the report) as the last line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "chaos", help="faults during a join and pod churn; then check convergence"
    )
    parser.add_argument("--nodes", type=int, default=100, help="nodes in all (default 100)")
    parser.add_argument("--netns-nodes", type=int, default=3,
                        help="of which network namespaces with real agents and pods")
    parser.add_argument("--seconds", type=float, default=120.0, help="how long faults last")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--converge-timeout", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None, help="where logs and state go")
    parser.add_argument("--netns-prefix", default="",
                        help="name prefix of the run's network namespaces (default: a random one)")
    parser.add_argument("--redis", choices=("sentinel", "single"), default="sentinel",
                        help="sentinel (default): a Sentinel group and a failover that loses "
                             "acknowledged writes every --failover-every seconds; single: one "
                             "Redis, restarted (clean and kill -9)")
    parser.add_argument("--failover-every", type=float, default=20.0)
    parser.add_argument("--no-hostile", dest="hostile", action="store_false",
                        help="no hostile agent (by default node A's credential attacks the others)")
    parser.add_argument("--shared-agent-login", dest="node_users", action="store_false",
                        help="agents log in as the control plane does (by default each netns "
                             "agent fetches its own node's ACL user from a credential issuer)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from vpcnet_sim.embedded.chaos import ChaosOptions, run_chaos
    from vpcnet_sim.embedded.preflight import check_host
    from vpcnet_sim.embedded.procs import unwind_on_sigterm

    unwind_on_sigterm()  # like Ctrl-C: every child process and namespace is cleaned up
    console = Console(stderr=True)
    if args.netns_nodes < 2 or args.nodes < args.netns_nodes:
        console.print("need --netns-nodes >= 2 and --nodes >= --netns-nodes")
        return 2
    problems = check_host(need_netns=True)
    if problems:
        console.print("[red]set-up checks failed:[/]\n  - " + "\n  - ".join(problems))
        return 2
    started = time.monotonic()

    def progress(msg: str) -> None:
        console.print(f"[{time.monotonic() - started:7.1f}s] {msg}")

    with tempfile.TemporaryDirectory(prefix="vpcnet-chaos-") as tmp:
        opts = ChaosOptions(
            workdir=args.workdir or Path(tmp),
            nodes=args.nodes,
            netns_nodes=args.netns_nodes,
            seconds=args.seconds,
            worker_processes=args.workers,
            converge_timeout=args.converge_timeout,
            seed=args.seed,
            netns_prefix=args.netns_prefix,
            redis=args.redis,
            failover_every=args.failover_every,
            hostile=args.hostile,
            node_users=args.node_users,
        )
        report = run_chaos(opts, progress)
    doc = report.to_dict()
    if not args.json:
        table = Table(title=f"chaos: {report.nodes} nodes ({report.netns_nodes} with pods)")
        table.add_column("")
        table.add_column("")
        for key in ("ok", "nodes_ready", "seconds_chaos", "seconds_converge", "faults", "pods",
                    "lost_writes", "hostile", "add_failures", "unexpected_exits", "worker_broker_loss_crashes", "violations", "problems", "ip_changed",
                    "check_failed", "ping_failed", "error"):
            value = doc[key]
            table.add_row(key, value if isinstance(value, str) else json.dumps(value))
        Console().print(table)
    print(json.dumps(doc))
    return 0 if report.ok else 1
