"""``vpcnet bench cni``: pod ADD/DEL latency of vpcnet-cni against Debian's ptp + host-local.

Both plugins are exec'd the way a runtime does it (environment + config on stdin), one
fresh pod namespace per pod, from the node's namespace, alternating ours and the
reference so machine noise hits both alike. Ours is the plugin as installed (by the
installer into a temporary bin dir, like the DaemonSet does; ``--plugin`` to choose),
talking to the agent's CNI server in a separate process over the unix socket, with a
pool built from ENI records, each ENI a real link in the node namespace.

Reported: p50/p99 of ADD and DEL for both and the ratios (ours / reference; at or below
1.0 is the goal), and where our time goes: process start and imports (VERSION; the
installed launcher hands it, like every invocation, to the agent over its fast path,
so it is the launcher's start and one round trip; with ``--plugin`` a plain plugin's
start), the socket round trip (measured in-process), and the agent's own work (total,
of which netlink and the checkpoint fsync). ``fast_path``: invocations the agent ran
in-process, ``fast_path_fallbacks``: those it left to the exec'd plugin.

Namespaces are named ``vpcbench-<random>-*`` and are always removed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vpcnet_sim.bench.cni_node import SimNode, cni_env, exec_plugin

REF_PLUGIN_DIR = Path("/usr/lib/cni")
SPEC_VERSION = "1.0.0"  # the newest both plugins speak (Debian's ptp stops at 1.0.0)
WARMUP = 3


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "cni", help="ADD/DEL latency of vpcnet-cni vs the reference ptp + host-local"
    )
    parser.add_argument("--pods", type=int, default=200, help="pods to ADD and DEL (default 200)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of results")
    parser.add_argument("--plugin", help="vpcnet-cni to exec (default: install one into a temp dir)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.pods < 1:
        print("--pods must be at least 1", file=sys.stderr)
        return 2
    try:
        result = run(args.pods, args.plugin, progress=not args.json)
    except BenchError as e:
        print(f"bench cni: {e}", file=sys.stderr)
        return 1
    print_table(result)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


class BenchError(Exception):
    pass


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def run(pods: int, plugin: str | None = None, progress: bool = False) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise BenchError("needs root (network namespaces)")
    for name in ("ptp", "host-local"):
        if not (REF_PLUGIN_DIR / name).exists():
            raise BenchError(f"reference plugin {REF_PLUGIN_DIR / name} missing (apt install containernetworking-plugins)")
    workdir = Path(tempfile.mkdtemp(prefix="vpcbench-"))
    node = SimNode(f"vpcbench-{secrets.token_hex(3)}", workdir / "node", pods)
    try:
        ours, how = _plugin(plugin, workdir, str(node.socket_path))
        node.start()
        def say(message: str) -> None:
            if progress:
                print(message, file=sys.stderr, flush=True)

        say(f"plugin: {ours} ({how}); node namespace {node.node_ns}; {pods} pods each")
        result = _measure(node, ours, pods, workdir, say)
        result["plugin"] = ours
        result["plugin_source"] = how
        return result
    finally:
        node.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _plugin(plugin: str | None, workdir: Path, agent_socket: str) -> tuple[str, str]:
    if plugin:
        if not os.access(plugin, os.X_OK):
            raise BenchError(f"{plugin} is not an executable")
        return plugin, "given"
    try:
        install_plugin: Any = importlib.import_module("vpcnet.install").install_plugin
        # As the agent installs it: the launcher's fast path hands invocations to the agent.
        path = install_plugin(workdir / "bin", workdir / "runtime", agent_socket=agent_socket)
        return str(path), "installed"
    except Exception as e:  # the installer is optional for the bench: say so, fall back
        script = shutil.which("vpcnet-cni") or str(Path(sys.executable).with_name("vpcnet-cni"))
        if not os.access(script, os.X_OK):
            raise BenchError(f"cannot install the plugin ({e}) and no vpcnet-cni script found") from e
        return script, f"console script (installer failed: {e})"


@contextmanager
def _inside(netns_name: str) -> Iterator[None]:
    """Run this thread (and the plugins it execs) in the node's namespace."""
    from pyroute2 import netns as pr_netns

    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns_name}", os.O_RDONLY)
    try:
        pr_netns.setns(target)
        yield
    finally:
        pr_netns.setns(home)
        os.close(target)
        os.close(home)


def _measure(
    node: SimNode, ours: str, pods: int, workdir: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    ref = str(REF_PLUGIN_DIR / "ptp")
    ref_conf = {
        "cniVersion": SPEC_VERSION,
        "name": "vpcbench-ref",
        "type": "ptp",
        "ipMasq": False,
        "mtu": node.mtu,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.78.0.0/16"}]],
            "dataDir": str(workdir / "host-local"),
        },
    }
    conf = node.conf(SPEC_VERSION)
    total = pods + WARMUP
    our_ns = [node.new_pod()[1] for _ in range(total)]
    ref_ns = [node.new_pod()[1] for _ in range(total)]
    times: dict[str, list[float]] = {"add": [], "del": [], "ref_add": [], "ref_del": []}
    ips: set[str] = set()
    say(f"{2 * total} pod namespaces created; ADD...")
    with _inside(node.node_ns):
        for i in range(total):
            cid = f"bench{i:05d}"
            rc, out, t = exec_plugin(ours, cni_env("ADD", cid, our_ns[i]), conf)
            _expect(rc == 0 and isinstance(out, dict), "vpcnet-cni ADD", out)
            ips.add(out["ips"][0]["address"])
            rc, rout, rt = exec_plugin(ref, cni_env("ADD", "r" + cid, ref_ns[i]), ref_conf)
            _expect(rc == 0, "ptp ADD", rout)
            if i >= WARMUP:
                times["add"].append(t)
                times["ref_add"].append(rt)
        _expect(len(ips) == total, "distinct IPs", f"{len(ips)} for {total} pods")
        say("DEL...")
        for i in range(total):
            cid = f"bench{i:05d}"
            rc, out, t = exec_plugin(ours, cni_env("DEL", cid, our_ns[i]), conf)
            _expect(rc == 0, "vpcnet-cni DEL", out)
            rc, rout, rt = exec_plugin(ref, cni_env("DEL", "r" + cid, ref_ns[i]), ref_conf)
            _expect(rc == 0, "ptp DEL", rout)
            if i >= WARMUP:
                times["del"].append(t)
                times["ref_del"].append(rt)
        say("breakdown...")
        start_ours = [exec_plugin(ours, {"CNI_COMMAND": "VERSION"}, {"cniVersion": SPEC_VERSION})[2] for _ in range(50)]
        start_ref = [exec_plugin(ref, {"CNI_COMMAND": "VERSION"}, {"cniVersion": SPEC_VERSION})[2] for _ in range(50)]
    left = node.checkpoint()["allocations"]
    _expect(not left, "pool returned after DEL", f"{len(left)} allocations left")
    rtt = _socket_roundtrips(str(node.socket_path), 200)
    node.stop_agent()
    stats = node.agent_stats()
    agent = [json.loads(line) for line in node.timings_path.read_text().splitlines()]

    def agent_p50(command: str, field: str) -> float:
        values = [a[field] for a in agent if a["command"] == command and a["ok"]]
        return _ms(statistics.median(values)) if values else 0.0

    r: dict[str, Any] = {"pods": pods, "spec_version": SPEC_VERSION,
                         # invocations the launcher's fast path ran in the agent / left to the plugin
                         "fast_path": stats["inprocess"], "fast_path_fallbacks": stats["fallbacks"]}
    for name, values in times.items():
        r[f"{name}_p50_ms"] = _ms(percentile(values, 50))
        r[f"{name}_p99_ms"] = _ms(percentile(values, 99))
    r["add_ratio"] = round(r["add_p50_ms"] / r["ref_add_p50_ms"], 3)
    r["del_ratio"] = round(r["del_p50_ms"] / r["ref_del_p50_ms"], 3)
    r["add_p99_ratio"] = round(r["add_p99_ms"] / r["ref_add_p99_ms"], 3)
    r["del_p99_ratio"] = round(r["del_p99_ms"] / r["ref_del_p99_ms"], 3)
    r["breakdown"] = {
        "plugin_start_p50_ms": _ms(statistics.median(start_ours)),
        "ref_plugin_start_p50_ms": _ms(statistics.median(start_ref)),
        "socket_roundtrip_p50_ms": _ms(statistics.median(rtt)),
        "agent_add_p50_ms": agent_p50("ADD", "total"),
        "agent_add_netlink_p50_ms": agent_p50("ADD", "netlink"),
        "agent_add_checkpoint_p50_ms": agent_p50("ADD", "checkpoint"),
        "agent_del_p50_ms": agent_p50("DEL", "total"),
        "agent_del_netlink_p50_ms": agent_p50("DEL", "netlink"),
        "agent_del_checkpoint_p50_ms": agent_p50("DEL", "checkpoint"),
    }
    return r


def _expect(ok: bool, what: str, detail: Any) -> None:
    if not ok:
        raise BenchError(f"{what} failed: {str(detail)[:500]}")


def _socket_roundtrips(path: str, n: int) -> list[float]:
    """STATUS over the agent socket from this process: connect, send, agent, reply."""
    import socket

    from vpcnet.cni import protocol as p

    data = p.dumps({"v": p.WIRE_VERSION, "command": "STATUS"}).encode()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
        out.append(time.perf_counter() - start)
    return out


def print_table(r: dict[str, Any]) -> None:
    rows = [
        ("ADD", r["add_p50_ms"], r["add_p99_ms"], r["ref_add_p50_ms"], r["ref_add_p99_ms"], r["add_ratio"]),
        ("DEL", r["del_p50_ms"], r["del_p99_ms"], r["ref_del_p50_ms"], r["ref_del_p99_ms"], r["del_ratio"]),
    ]
    print(f"vpcnet-cni vs ptp+host-local, {r['pods']} pods, spec {r['spec_version']}, plugin {r['plugin']}")
    print(f"{'':4} {'p50 ms':>9} {'p99 ms':>9} {'ref p50':>9} {'ref p99':>9} {'ratio p50':>10}")
    for name, p50, p99, rp50, rp99, ratio in rows:
        print(f"{name:4} {p50:9.2f} {p99:9.2f} {rp50:9.2f} {rp99:9.2f} {ratio:10.3f}")
    b = r["breakdown"]
    print("where the time goes (p50):")
    print(f"  process start + imports (VERSION)  {b['plugin_start_p50_ms']:7.2f} ms  (ptp: {b['ref_plugin_start_p50_ms']:.2f} ms)"
          f"{'; via the fast path' if r.get('fast_path') else ''}")
    print(f"  launcher fast path                 {r.get('fast_path', 0)} invocations in the agent, "
          f"{r.get('fast_path_fallbacks', 0)} fallbacks")
    print(f"  socket round trip (STATUS)         {b['socket_roundtrip_p50_ms']:7.2f} ms")
    print(f"  agent ADD                          {b['agent_add_p50_ms']:7.2f} ms  "
          f"(netlink {b['agent_add_netlink_p50_ms']:.2f}, checkpoint {b['agent_add_checkpoint_p50_ms']:.2f})")
    print(f"  agent DEL                          {b['agent_del_p50_ms']:7.2f} ms  "
          f"(netlink {b['agent_del_netlink_p50_ms']:.2f}, checkpoint {b['agent_del_checkpoint_p50_ms']:.2f})")
