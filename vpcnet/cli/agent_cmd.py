"""``vpcnet agent``: the node agent (DaemonSet) and its readiness probe.

Settings come from ``VPCNET_AGENT_*`` (see ``vpcnet.settings.AgentSettings``).
``vpcnet agent --check-ready`` exits 0 when the agent on this node is ready and its
loop ran recently (the DaemonSet's readiness probe), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "agent", help="run the node agent (settings from VPCNET_AGENT_*)"
    )
    parser.add_argument(
        "--check-ready",
        action="store_true",
        help="readiness probe: exit 0 if the running agent reports ready",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vpcnet.errors import ConfigError
    from vpcnet.settings import AgentSettings

    try:
        settings = AgentSettings.from_env()
    except ConfigError as e:
        print(f"vpcnet agent: {e}", file=sys.stderr)
        return 2
    if args.check_ready:
        from vpcnet.agent.main import check_ready

        # Three missed resyncs (at least 30 s) mean the loop is stuck.
        ok, why = check_ready(
            Path(settings.status_path), max(3 * settings.resync_seconds, 30.0), time.time()
        )
        print(why)
        return 0 if ok else 1
    from vpcnet.observability.logs import configure_logging

    try:
        # JSON lines on stderr, each naming the node (and, during a CNI request, the
        # container); the plugin's own log is a file (VPCNET_AGENT_LOG_FILE).
        configure_logging("agent", args.log_level, static={"node": settings.node_name})
    except ValueError as e:
        print(f"vpcnet agent: {e}", file=sys.stderr)
        return 2
    from vpcnet.agent.main import run_agent

    return run_agent(settings)
