"""``vpcnet sim ec2``: run the EC2 + IMDS emulator in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from typing import Any

from vpcnet_sim.ec2.config import PRESETS


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "ec2", help="EC2 API + instance metadata emulator (moto with AWS's ENI rules)"
    )
    p.add_argument("--port", type=int, required=True, help="TCP port (0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--latency", choices=PRESETS, default="fast",
                   help="per-action latency preset: aws (typical EC2 latencies, see "
                   "vpcnet_sim.ec2.config) or fast (none)")
    p.add_argument("--throttle", action=argparse.BooleanOptionalAction, default=True,
                   help="AWS token-bucket throttling (RequestLimitExceeded); on by default")
    p.add_argument("--attach-delay", type=float, default=None,
                   help="seconds an attachment reads 'attaching' (default from the preset)")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="run the emulated clock K times faster: latencies and delays / K, "
                   "token buckets refilling K times faster (benchmarks)")
    p.add_argument("--bootstrap", action="store_true",
                   help="create a VPC, subnets and a security group; print their ids")
    p.add_argument("--seed", type=int, default=None, help="seed for jitter and faults")
    p.add_argument("--ipv4-only-subnet", action="append", default=[], metavar="CIDR",
                   help="a subnet (by IPv4 CIDR) --bootstrap makes without an IPv6 /64 "
                   "(repeatable; every other subnet is dual-stack)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vpcnet_sim.ec2 import Ec2Emulator, Ec2SimConfig

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    changes: dict[str, Any] = {"throttle": args.throttle, "seed": args.seed,
                               "ipv4_only_subnets": tuple(args.ipv4_only_subnet)}
    if args.attach_delay is not None:
        changes["attach_delay"] = args.attach_delay
    if args.time_scale <= 0:
        print("--time-scale must be positive", file=sys.stderr)
        return 2
    config = Ec2SimConfig.preset_named(args.latency, **changes).time_scaled(args.time_scale)
    emu = Ec2Emulator(config, host=args.host, port=args.port).start()
    info: dict[str, Any] = {
        "endpoint_url": emu.endpoint_url,
        "imds_url": emu.endpoint_url + "/_imds/<instance-id>",
        "admin_url": emu.endpoint_url + "/_sim/",
        "latency": args.latency,
        "throttle": args.throttle,
        "time_scale": args.time_scale,
    }
    if args.bootstrap:
        info["world"] = emu.bootstrap_vpc().to_dict()
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    # Before the ready line: a caller may send SIGTERM as soon as it has read it.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(json.dumps(info, sort_keys=True), flush=True)
    while not stop.wait(0.5):
        pass
    emu.stop()
    return 0
