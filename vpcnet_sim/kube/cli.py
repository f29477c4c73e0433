"""``vpcnet sim kube``: run the Kubernetes API emulator in the foreground."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "kube", help="Kubernetes API emulator (Nodes, Pods, Events, Leases over HTTP)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=6443, help="port to listen on (0: any free)")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for the emulator here")
    parser.add_argument("--history", type=int, default=1000,
                        help="watch history window (older resourceVersions get 410 Gone)")
    parser.add_argument("--bookmark-interval", type=float, default=60.0,
                        help="seconds between watch BOOKMARK events")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vpcnet_sim.kube import KubeEmulator

    kube = KubeEmulator(args.host, args.port, args.history,
                        bookmark_interval=args.bookmark_interval).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"kube emulator listening on {kube.url} (watch history {args.history})", flush=True)
    if args.kubeconfig:
        print(f"kubeconfig written to {kube.write_kubeconfig(args.kubeconfig)}", flush=True)
    try:
        stop.wait()
    finally:
        kube.stop()
    print("kube emulator stopped", flush=True)
    return 0
