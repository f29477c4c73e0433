"""``vpcnet status`` (cluster overview) and ``vpcnet inspect NODE`` (one node, EC2 vs
Redis vs agent side by side). Tables by default, ``--json`` for scripts."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any


def register(sub: Any) -> None:
    status = sub.add_parser("status", help="nodes by phase, IP capacity and use, queues, errors")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=run_status)
    inspect = sub.add_parser("inspect", help="one node's ENIs, IPs and pods: EC2 vs Redis vs agent")
    inspect.add_argument("node")
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(func=run_inspect)


def _queue_depths(redis_url: str) -> dict[str, int]:
    from vpcnet.state.connection import connect
    from vpcnet.tasknames import QUEUES

    client = connect(redis_url, socket_connect_timeout=2)
    try:
        return {q: int(client.llen(q)) for q in QUEUES}
    finally:
        client.close()


def run_status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from vpcnet.ops.collect import collect, node_view
    from vpcnet.settings import Settings
    from vpcnet.wellknown import KEY_PREFIX

    settings = Settings.from_env()
    world = collect(settings)
    views = [node_view(world, n) for n in world.redis_nodes]
    summary = {
        "cluster": settings.cluster_name,
        "nodes": len(views),
        "phases": dict(Counter(v["phase"] for v in views)),
        "ips_total": sum(v["ips_total"] for v in views),
        "ips_assigned": sum(v["ips_assigned"] for v in views),
        "enis": sum(len(v["enis"]) for v in views),
        "queues": _queue_depths(settings.broker),
        "recent_errors": list(world.errors),
        "node_list": [
            {k: v[k] for k in ("name", "instance_type", "phase", "ip_family", "max_pods",
                               "ips_total", "ips_assigned", "ips_free", "ipv6_prefixes",
                               "ipv6_assigned", "agent_assigned6", "agent_ready", "taints",
                               "error")}
            for v in views
        ],
    }
    if args.json:
        print(json.dumps(summary, default=str))
        return 0
    # emoji=False: IPv6 text such as "2001:db8:0:100:2::" holds emoji codes (":100:")
    console = Console(width=max(Console().width, 120), emoji=False)  # wide tables; pipes default to 80
    console.print(
        f"cluster [bold]{settings.cluster_name}[/]: {summary['nodes']} nodes "
        f"({', '.join(f'{k} {n}' for k, n in sorted(summary['phases'].items())) or 'none'}), "
        f"{summary['enis']} ENIs, IPs {summary['ips_assigned']}/{summary['ips_total']} in use, "
        f"queues {summary['queues']}"
    )
    table = Table()
    for col in ("node", "type", "phase", "family", "max pods", "IPs used/total", "free",
                "IPv6 used (/80s)", "agent", "taints", "error"):
        table.add_column(col)
    for v in views:
        table.add_row(
            v["name"], v["instance_type"], v["phase"], v["ip_family"] or "-",
            "-" if v["max_pods"] is None else str(v["max_pods"]),
            f"{v['ips_assigned']}/{v['ips_total']}", str(v["ips_free"]), _ipv6_cell(v),
            "ready" if v["agent_ready"] else "-",
            ",".join(t.removeprefix(KEY_PREFIX) for t in v["taints"]) or "-", v["error"] or "",
        )
    console.print(table)
    if world.errors:
        errors = Table(title="recent errors")
        for col in ("node", "kind", "message"):
            errors.add_column(col)
        for e in world.errors[:10]:
            errors.add_row(str(e.get("node", "")), str(e.get("kind", "")), str(e.get("message", "")))
        console.print(errors)
    return 0


def _ipv6_cell(view: dict[str, Any]) -> str:
    prefixes = view["ipv6_prefixes"]
    if not prefixes and not view["ipv6_assigned"]:
        return "-"
    return f"{view['ipv6_assigned']} ({len(prefixes)})"


def run_inspect(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from vpcnet.ops.collect import collect, node_view
    from vpcnet.settings import Settings

    world = collect(Settings.from_env())
    if args.node not in world.redis_nodes:
        msg = f"no node {args.node!r} in vpcnet's state (known: {', '.join(world.redis_nodes) or 'none'})"
        print(json.dumps({"error": msg}) if args.json else msg)
        return 1
    view = node_view(world, args.node)
    if args.json:
        print(json.dumps(view, default=str))
        return 0
    # emoji=False: IPv6 text such as "2001:db8:0:100:2::" holds emoji codes (":100:")
    console = Console(width=max(Console().width, 120), emoji=False)
    console.print(
        f"[bold]{view['name']}[/] {view['instance_id']} {view['instance_type']} phase={view['phase']} "
        f"mode={view['mode']} family={view['ip_family'] or '-'} max-pods={view['max_pods']} "
        f"ipv6={','.join(view['ipv6_prefixes']) or '-'} (assigned {view['ipv6_assigned']}) "
        f"agent={'ready' if view['agent_ready'] else 'not ready'} "
        f"IPs {view['ips_assigned']}/{view['ips_total']} (free {view['ips_free']}, "
        f"cooldown {view['ips_cooldown']}) taints={view['taints'] or '-'}"
    )
    if view["error"]:
        console.print(f"[red]error:[/] {view['error']}")
    table = Table()
    for col in ("ENI", "dev", "subnet", "Redis IPs", "EC2", "EC2 IPs", "assigned",
                "IPv6 /80s", "IPv6 assigned", "pods"):
        table.add_column(col)
    for e in view["enis"]:
        table.add_row(
            e["eni_id"] + (" (primary)" if e["primary"] else ""), str(e["device_index"]),
            " ".join(c for c in (e["subnet_cidr"], e["subnet_ipv6_cidr"]) if c),
            str(len(e["ips"]) + 16 * len(e["prefixes"])), e["ec2_status"],
            str(e["ec2_ips"]), str(e["assigned"]), ", ".join(e["ipv6_prefixes"]) or "-",
            str(e["ipv6_assigned"]), ", ".join(e["pods"]) or "-",
        )
    console.print(table)
    return 0
