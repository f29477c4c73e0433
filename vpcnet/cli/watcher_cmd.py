"""``vpcnet watcher``: the node watcher process (run several replicas; one leads).

Settings come from the environment (``VPCNET_*``, see :class:`vpcnet.settings.Settings`):
``VPCNET_KUBECONFIG`` (unset = in-cluster), ``VPCNET_REDIS_URL``, ``VPCNET_BROKER_URL``,
``VPCNET_CLUSTER_NAME``, ``VPCNET_LEASE_DURATION_SECONDS``, ``VPCNET_WATCHER_DEDUP_SECONDS``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog

from vpcnet.errors import ConfigError, VpcnetError
from vpcnet.observability.logs import configure_logging
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


def run(args: argparse.Namespace) -> int:
    # JSON lines on stderr (the same setup as workers and agents).
    configure_logging("watcher", args.log_level)
    log = structlog.get_logger("vpcnet.watcher")
    try:
        settings = Settings.from_env()
        # Imported here: `vpcnet --help` must not pay for the Kubernetes client.
        from vpcnet.watcher.loop import Watcher

        watcher = Watcher.from_settings(
            settings, leader_election=not args.no_leader_election, identity=args.identity
        )
    except ConfigError as e:
        print(f"vpcnet watcher: {e}", file=sys.stderr)
        return 2
    if args.metrics_port:
        serve_cluster_metrics(settings, args.metrics_port, args.metrics_address,
                              leading=lambda: watcher.stats.leading)
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


def serve_cluster_metrics(settings: Settings, port: int, address: str,
                          leading: Callable[[], bool]) -> None:
    """The watcher's own metrics, plus (while this replica leads) every node's pool from
    Redis: one exporter of the cluster view, so sums over replicas count each node once."""
    from prometheus_client import REGISTRY

    from vpcnet.observability.collectors import ClusterPoolCollector
    from vpcnet.observability.metrics import serve_metrics
    from vpcnet.state.connection import connect

    client = connect(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    REGISTRY.register(ClusterPoolCollector(lambda: client, settings.cluster_name, leading))
    serve_metrics(port, address)
