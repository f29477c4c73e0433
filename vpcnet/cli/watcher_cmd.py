"""``vpcnet watcher``: the node watcher process (run several replicas; one leads).

Settings come from the environment (``VPCNET_*``, see :class:`vpcnet.settings.Settings`):
``VPCNET_KUBECONFIG`` (unset = in-cluster), ``VPCNET_REDIS_URL``, ``VPCNET_BROKER_URL``,
``VPCNET_CLUSTER_NAME``, ``VPCNET_LEASE_DURATION_SECONDS``, ``VPCNET_WATCHER_DEDUP_SECONDS``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

import structlog

from vpcnet.errors import ConfigError, VpcnetError
from vpcnet.settings import Settings


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "watcher",
        help="watch Nodes, taint/label them and enqueue provisioning (leader-elected)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--no-leader-election",
        action="store_true",
        help="act without holding the Lease (a single replica only)",
    )
    parser.add_argument("--identity", help="leader-election identity (default: host_pid_random)")
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="serve Prometheus metrics (0: off)"
    )
    parser.add_argument("--metrics-address", default="0.0.0.0", help="address for --metrics-port")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.set_defaults(func=run)


def configure_logging(level: str) -> None:
    """JSON lines on stderr, one object per event, with the bound node/task fields."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    log = structlog.get_logger("vpcnet.watcher")
    try:
        settings = Settings.from_env()
        # Imported here: `vpcnet --help` must not pay for the Kubernetes client.
        from vpcnet.watcher import Watcher

        watcher = Watcher.from_settings(
            settings, leader_election=not args.no_leader_election, identity=args.identity
        )
    except ConfigError as e:
        print(f"vpcnet watcher: {e}", file=sys.stderr)
        return 2
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr=args.metrics_address)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("watcher.signal", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        watcher.run(stop)  # returns after handing the Lease over
    except VpcnetError as e:
        log.error("watcher.failed", error=str(e))
        return 1
    finally:
        watcher.close()
    return 0
