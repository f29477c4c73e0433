"""``vpcnet bench burst``: N pods start at once on one node, then again inside the cooldown.

The whole system runs for real (the embedded stack: Redis, watcher, Celery workers, beat,
the node's agent in its network namespace, the EC2 emulator with AWS's latencies and
buckets). On one node that is ready: N concurrent ADDs (the installed plugin exec'd as a
runtime does, one fresh pod namespace each), then their DELs, then N ADDs again at once,
while the first N IPs are still cooling down. In warm or prefix mode the second burst
(and a first one beyond the warm pool) is served by the control plane growing the pool
for the node's demand; in full mode by the IPs leaving the cooldown.

The reference, in the same run: N concurrent ADDs of ptp + host-local (Debian's
containernetworking-plugins) from a namespace of their own.

Reported (``--json``: one line at the end): the first burst's wall time and ADD p50/p99
(time to IP), the second burst's, failed ADDs by CNI code (both bursts), the EC2 calls
made from the node being ready to the end, the reference's wall time and the ratio, and
the Assign round trip (``assign_rtt_ms``: p50 and max of the AssignPrivateIpAddresses
calls of the first burst, from arrival to answer as the emulator's call log saw them;
``cooldown_assign_rtt_ms`` for the second), the unit of issue 13's warm-burst target
"p99 time-to-IP <= one Assign round trip + 1 s". Nothing here asserts a time.

``--timeline`` tells each burst's story on stderr (``timeline``: the ADDs done per 100 ms
and every EC2 call, arrival and answer, in ms from the burst's first ADD): the rounds of
the control plane and what the ADDs waited for. ``--keep-logs DIR`` keeps the stack's
process logs (the agent's ``cni ADD`` lines say where each ADD's time went: ``ip_ms``,
``checkpoint_ms``, ``netlink_ms``; its ``pool: N IPs added`` lines when a round's IPs
reached the pool) to line up with it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vpcnet.domain import Mode

if TYPE_CHECKING:
    from vpcnet_sim.ec2.calllog import LoggedCall

REF_PLUGIN_DIR = Path("/usr/lib/cni")
REF_SPEC_VERSION = "1.0.0"  # Debian's ptp stops at 1.0.0
PLUGIN_TIMEOUT_SECONDS = 120.0  # the exec's own bound: above the plugin's 60 s default budget
JOIN_TIMEOUT_SECONDS = 180.0
NODE_NAME = "burst-node"
ASSIGN_ACTION = "AssignPrivateIpAddresses"  # secondary IPs and /28 prefixes alike


class BenchError(Exception):
    pass


@dataclass
class BurstStats:
    """One burst of concurrent ADDs."""

    pods: int
    wall_ms: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    failed: dict[str, int] = field(default_factory=dict)  # CNI code -> ADDs
    errors: list[str] = field(default_factory=list)  # the first few messages


@dataclass
class BurstResult:
    pods: int
    mode: str
    instance_type: str
    warm_ip_target: int
    cooldown_seconds: float
    first: BurstStats
    second: BurstStats  # inside the cooldown
    reference: BurstStats
    ec2_calls: dict[str, int] = field(default_factory=dict)  # node ready -> end of burst 2
    ec2_calls_first: dict[str, int] = field(default_factory=dict)  # of which burst 1
    join_seconds: float = 0.0
    # Warm mode: node ready -> its ENIs held ahead attached and programmed by the agent
    # (the warm-pool scan's pass adds them once the node is READY); the burst starts
    # then, on a warm node. None: not warm mode, or they did not come in time.
    enis_ahead_seconds: float | None = None
    assign_rtt: dict[str, float] = field(default_factory=dict)  # burst 1, see round_trips
    assign_rtt_cooldown: dict[str, float] = field(default_factory=dict)  # burst 2

    def summary(self) -> dict[str, Any]:
        failed: Counter[str] = Counter(self.first.failed)
        failed.update(self.second.failed)
        ratio = self.first.wall_ms / self.reference.wall_ms if self.reference.wall_ms else None
        return {
            "pods": self.pods,
            "mode": self.mode,
            "instance_type": self.instance_type,
            "warm_ip_target": self.warm_ip_target,
            "cooldown_seconds": self.cooldown_seconds,
            "join_seconds": self.join_seconds,
            "enis_ahead_seconds": self.enis_ahead_seconds,
            "add_wall_ms": self.first.wall_ms,
            "add_p50_ms": self.first.p50_ms,
            "add_p99_ms": self.first.p99_ms,
            "cooldown_add_wall_ms": self.second.wall_ms,
            "cooldown_add_p50_ms": self.second.p50_ms,
            "cooldown_add_p99_ms": self.second.p99_ms,
            "failed": dict(sorted(failed.items())),
            "failed_first": self.first.failed,
            "failed_cooldown": self.second.failed,
            "errors": (self.first.errors + self.second.errors)[:5],
            "ec2_calls": self.ec2_calls,
            "ec2_calls_first": self.ec2_calls_first,
            "assign_rtt_ms": self.assign_rtt,
            "cooldown_assign_rtt_ms": self.assign_rtt_cooldown,
            "ref_add_wall_ms": self.reference.wall_ms,
            "ref_add_p50_ms": self.reference.p50_ms,
            "ref_add_p99_ms": self.reference.p99_ms,
            "ref_failed": self.reference.failed,
            "wall_ratio": round(ratio, 3) if ratio is not None else None,
        }


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def round_trips(calls: Sequence[LoggedCall], since: float = -math.inf) -> dict[str, float]:
    """The round trips (arrival to answer, ms) of the ``calls`` that arrived at or after
    ``since`` (the emulator's monotonic clock): count, p50, max; {} for none."""
    rtts = [(c.answered - c.received) * 1000 for c in calls if c.received >= since]
    if not rtts:
        return {}
    return {"count": len(rtts), "p50": round(percentile(rtts, 50), 1), "max": round(max(rtts), 1)}


def timeline(runs: Sequence[tuple[float, float, int, str]], calls: Sequence[LoggedCall],
             step: float = 0.1) -> list[str]:
    """A burst's story, in ms from its first ADD's start: the ADDs finished in each
    ``step`` (and how many so far), every EC2 call that arrived meanwhile (arrival and
    answer). ``runs`` as ``_stats`` takes them, ``calls`` on the same monotonic clock."""
    if not runs:
        return []
    t0 = min(r[0] for r in runs)
    last_start = max(r[0] for r in runs) - t0
    events: list[tuple[float, str]] = [(last_start, f"last of {len(runs)} ADDs started")]
    end = max(r[1] for r in runs)
    for c in calls:
        if t0 <= c.received <= end:
            events.append((c.received - t0, f"{c.action} (answered +{(c.answered - t0) * 1000:.0f})"))
    done: Counter[int] = Counter(int((r[1] - t0) / step) for r in runs)
    total = 0
    for bucket in sorted(done):
        total += done[bucket]
        events.append(((bucket + 1) * step, f"{done[bucket]} ADDs done ({total})"))
    return [f"+{t * 1000:6.0f} ms  {what}" for t, what in sorted(events, key=lambda e: e[0])]


def _stats(pods: int, runs: Sequence[tuple[float, float, int, str]]) -> BurstStats:
    """From (start, end, CNI code or 0, message) per ADD."""
    out = BurstStats(pods)
    if not runs:
        return out
    out.wall_ms = round((max(r[1] for r in runs) - min(r[0] for r in runs)) * 1000, 1)
    ok = [(r[1] - r[0]) * 1000 for r in runs if r[2] == 0]
    out.p50_ms = round(percentile(ok, 50), 1)
    out.p99_ms = round(percentile(ok, 99), 1)
    out.failed = dict(Counter(str(r[2]) for r in runs if r[2] != 0))
    out.errors = [r[3] for r in runs if r[2] != 0][:5]
    return out


def _concurrently(n: int, one: Callable[[int], tuple[float, float, int, str]],
                  initializer: Callable[[], None] | None = None) -> list[tuple[float, float, int, str]]:
    with ThreadPoolExecutor(max(1, n), initializer=initializer) as pool:
        return list(pool.map(one, range(n)))


@contextlib.contextmanager
def ready_node(mode: str, instance_type: str, warm_ip_target: int, cooldown_seconds: float,
               workdir: Path, say: Callable[[str], None] = lambda _: None) -> Iterator[ReadyNode]:
    """The embedded stack with one node of ``instance_type`` joined and ready; torn down
    (processes and every namespace) on the way out."""
    from vpcnet_sim.embedded.procs import wait_for
    from vpcnet_sim.embedded.stack import EmbeddedStack, StackOptions
    from vpcnet_sim.runtime import PodRuntime
    from vpcnet_sim.vpc import teardown_prefix

    if os.geteuid() != 0:
        raise BenchError("needs root (network namespaces)")
    prefix = f"vpcbrst-{secrets.token_hex(3)}-"
    env = {"VPCNET_WARM_IP_TARGET": str(warm_ip_target)} if warm_ip_target else {}
    stack = EmbeddedStack(StackOptions(
        workdir=workdir, cluster="burst", mode=mode, ec2_latency="aws", flower=False,
        netns_prefix=prefix, ip_cooldown_seconds=cooldown_seconds, extra_env=env,
    ))
    try:
        with stack.running():
            stack.wait_processes_up()
            t0 = time.monotonic()
            node = stack.launch_node(NODE_NAME, instance_type)
            stack.register_node(node)
            assert node.conf_dir is not None and node.bin_dir is not None
            conf_dir, bin_dir = node.conf_dir, node.bin_dir

            def ready() -> bool:
                dead = stack.dead_processes()
                if dead:
                    raise BenchError(f"{dead[0].name} exited:\n{dead[0].tail()}")
                if stack.node_phase(node.name) == "error":
                    raise BenchError(f"{node.name} failed to provision (see the worker log)")
                return (stack.node_phase(node.name) == "ready" and not stack.node_tainted(node.name)
                        and bool(list(conf_dir.glob("*.conflist"))))

            wait_for(ready, JOIN_TIMEOUT_SECONDS, f"{node.name} ready", interval=0.1)
            join = round(time.monotonic() - t0, 2)
            say(f"{node.name} ({instance_type}, {mode}) ready in {join}s")
            ahead = _wait_enis_ahead(stack, node.name, node.instance_id, say) if mode == "warm" else None
            conflist = sorted(conf_dir.glob("*.conflist"))[0]
            runtime = PodRuntime(conflist, [bin_dir, REF_PLUGIN_DIR], f"{prefix}p-",
                                 timeout=PLUGIN_TIMEOUT_SECONDS)
            yield ReadyNode(stack, runtime, prefix, join, ahead)
    finally:
        teardown_prefix(prefix)


# How long a warm node's ENIs held ahead may take after it is ready: the warm-pool
# scan's interval (10 s) and a chain (~2.5 s), with room.
ENIS_AHEAD_TIMEOUT_SECONDS = 30.0


def _wait_enis_ahead(stack: Any, node: str, instance_id: str,
                     say: Callable[[str], None]) -> float | None:
    """Seconds until the node holds every ENI its type allows (the default
    ``warm_attached_enis``), the store's write says so and the agent programmed that
    write; None on timeout."""
    from vpcnet.state.records import AgentRecord, NodeRecord

    t0 = time.monotonic()
    while time.monotonic() - t0 < ENIS_AHEAD_TIMEOUT_SECONDS:
        view = stack.ec2.instance_view(instance_id)
        want = (view.get("limits") or {}).get("max_enis", 0)
        if len(view["enis"]) >= want:
            client = stack.redis.client()
            try:
                keys = stack.keys.node(node)
                record = NodeRecord.from_redis(client.hgetall(keys.node))
                agent = AgentRecord.from_redis(client.hgetall(keys.agent))
                written = int(client.hlen(keys.enis))
            finally:
                client.close()
            if written >= want and agent.has_programmed(record.version):
                ahead = round(time.monotonic() - t0, 2)
                say(f"{node}: {len(view['enis'])} ENIs held ahead, programmed, {ahead}s after ready")
                return ahead
        time.sleep(0.1)
    say(f"{node}: ENIs held ahead not all attached {ENIS_AHEAD_TIMEOUT_SECONDS:g}s after ready")
    return None


@dataclass
class ReadyNode:
    stack: Any  # vpcnet_sim.embedded.stack.EmbeddedStack
    runtime: Any  # vpcnet_sim.runtime.PodRuntime
    prefix: str
    join_seconds: float
    enis_ahead_seconds: float | None = None
    last_runs: list[tuple[float, float, int, str]] = field(default_factory=list)  # the last burst's

    def burst(self, pods: int, label: str) -> tuple[BurstStats, list[Any]]:
        """``pods`` concurrent ADDs, each in a fresh pod namespace made beforehand."""
        from vpcnet_sim.runtime import CniError

        batch = [self.runtime.new_pod("default", f"{label}-{i}") for i in range(pods)]

        def add(i: int) -> tuple[float, float, int, str]:
            start = time.perf_counter()
            try:
                self.runtime.add(batch[i])
                return start, time.perf_counter(), 0, ""
            except CniError as e:
                return start, time.perf_counter(), e.code, str(e)[:300]

        runs = _concurrently(pods, add)
        self.last_runs = runs
        return _stats(pods, runs), batch

    def delete(self, batch: Sequence[Any]) -> None:
        _concurrently(len(batch), lambda i: _delete(self.runtime, batch[i]))

    def status(self) -> tuple[int, str]:
        """CNI STATUS of the node's network: (0 or the error code, message)."""
        from vpcnet_sim.runtime import CniError, Pod

        conflist = self.runtime.load_conflist()
        probe = Pod("default", "status", "none", "0" * 64)
        try:
            self.runtime.exec_plugin(conflist, conflist["plugins"][0], "STATUS", probe, None)
        except CniError as e:
            return e.code, str(e)
        return 0, ""

    def taints(self) -> list[str]:
        """The keys of the node's taints in Kubernetes."""
        from kubernetes import client as k8s

        api = k8s.CoreV1Api(self.stack.kube.api_client())
        node = api.read_node(NODE_NAME)
        return [t.key for t in (node.spec.taints if node.spec else None) or []]

    def assign_calls(self) -> list[LoggedCall]:
        """The Assign calls since the counters' reset, in arrival order."""
        calls: list[LoggedCall] = self.stack.ec2.calls(ASSIGN_ACTION)
        return calls

    def ec2_calls(self) -> dict[str, int]:
        counters = self.stack.ec2.counters()
        return dict(sorted(counters.get("calls", {}).items()))


def run_burst(pods: int, mode: str, instance_type: str, warm_ip_target: int,
              cooldown_seconds: float, workdir: Path,
              say: Callable[[str], None] = lambda _: None,
              story: Callable[[str], None] | None = None) -> BurstResult:
    """``story``: told each burst's ``timeline``, line by line."""
    for name in ("ptp", "host-local"):
        if not (REF_PLUGIN_DIR / name).exists():
            raise BenchError(f"reference plugin {REF_PLUGIN_DIR / name} missing "
                             "(apt install containernetworking-plugins)")
    result = BurstResult(pods, mode, instance_type, warm_ip_target, cooldown_seconds,
                         BurstStats(pods), BurstStats(pods), BurstStats(pods))
    with ready_node(mode, instance_type, warm_ip_target, cooldown_seconds, workdir, say) as n:
        result.join_seconds = n.join_seconds
        result.enis_ahead_seconds = n.enis_ahead_seconds
        n.stack.ec2.reset_counters()
        say(f"burst 1: {pods} concurrent ADDs")
        result.first, first_pods = n.burst(pods, "a")
        result.ec2_calls_first = n.ec2_calls()
        result.assign_rtt = round_trips(n.assign_calls())
        if story is not None:
            for line in timeline(n.last_runs, n.stack.ec2.calls()):
                story(line)
        say(f"  wall {result.first.wall_ms} ms, p99 {result.first.p99_ms} ms, failed "
            f"{result.first.failed}; {_describe_rtt(result.assign_rtt)}; DEL all")
        n.delete(first_pods)
        say(f"burst 2 (inside the {cooldown_seconds:g}s cooldown): {pods} concurrent ADDs")
        second_start = time.monotonic()  # the emulator's clock: it runs in this process
        result.second, second_pods = n.burst(pods, "b")
        say(f"  wall {result.second.wall_ms} ms, failed {result.second.failed}")
        result.ec2_calls = n.ec2_calls()
        # The log runs on from the reset: the second burst's calls arrived after its start.
        result.assign_rtt_cooldown = round_trips(n.assign_calls(), since=second_start)
        if story is not None:
            for line in timeline(n.last_runs, n.stack.ec2.calls()):
                story(line)
        n.delete(second_pods)
        for pod in first_pods + second_pods:
            n.runtime.remove_netns(pod)
        say(f"reference: {pods} concurrent ptp + host-local ADDs")
        result.reference = _reference(pods, n.prefix, workdir)
    return result


def _describe_rtt(rtt: dict[str, float]) -> str:
    if not rtt:
        return f"no {ASSIGN_ACTION} call"
    return (f"{ASSIGN_ACTION} round trip p50 {rtt['p50']} ms, max {rtt['max']} ms "
            f"({int(rtt['count'])} calls)")


def _delete(runtime: Any, pod: Any) -> tuple[float, float, int, str]:
    start = time.perf_counter()
    runtime.delete(pod, ignore_errors=True)
    return start, time.perf_counter(), 0, ""


def _reference(pods: int, prefix: str, workdir: Path) -> BurstStats:
    """ptp + host-local: N concurrent ADDs exec'd from a namespace of their own."""
    from pyroute2 import netns as pr_netns

    host = f"{prefix}ref"
    subprocess.run(["ip", "netns", "add", host], check=True, capture_output=True)
    names = [f"{prefix}r{i}" for i in range(pods)]
    for n in names:
        subprocess.run(["ip", "netns", "add", n], check=True, capture_output=True)
    conf = json.dumps({
        "cniVersion": REF_SPEC_VERSION, "name": "vpcburst-ref", "type": "ptp", "ipMasq": False,
        "mtu": 9001,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.78.0.0/16"}]],
                 "dataDir": str(workdir / "host-local")},
    }).encode()

    def enter() -> None:  # every worker thread (and the plugins it execs) in ``host``
        fd = os.open(f"/run/netns/{host}", os.O_RDONLY)
        try:
            pr_netns.setns(fd)
        finally:
            os.close(fd)

    def add(i: int) -> tuple[float, float, int, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": "ADD",
               "CNI_CONTAINERID": f"ref{i:05d}", "CNI_NETNS": f"/run/netns/{names[i]}",
               "CNI_IFNAME": "eth0", "CNI_PATH": str(REF_PLUGIN_DIR)}
        start = time.perf_counter()
        proc = subprocess.run([str(REF_PLUGIN_DIR / "ptp")], input=conf, env=env,
                              capture_output=True, timeout=PLUGIN_TIMEOUT_SECONDS)
        end = time.perf_counter()
        if proc.returncode == 0:
            return start, end, 0, ""
        try:
            code = int(json.loads(proc.stdout or b"{}").get("code", 999))
        except ValueError:
            code = 999
        return start, end, code, proc.stdout.decode(errors="replace")[:300]

    return _stats(pods, _concurrently(pods, add, initializer=enter))


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "burst", help="N concurrent pod ADDs on one node, again inside the cooldown, vs ptp+host-local")
    parser.add_argument("--pods", type=int, default=40, help="concurrent ADDs per burst (default 40)")
    parser.add_argument("--mode", choices=[m.value for m in Mode], default="full")
    parser.add_argument("--instance-type", default="",
                        help="default: c5.xlarge (56 pod IPs), m5.4xlarge for more than 56 pods")
    parser.add_argument("--warm-ip-target", type=int, default=5,
                        help="VPCNET_WARM_IP_TARGET in warm mode (default 5)")
    parser.add_argument("--cooldown", type=float, default=30.0,
                        help="IP cooldown seconds (VPCNET_IP_COOLDOWN_SECONDS, default 30)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of results")
    parser.add_argument("--timeline", action="store_true",
                        help="tell each burst's timeline on stderr (ADDs done, EC2 calls)")
    parser.add_argument("--keep-logs", type=Path, default=None, metavar="DIR",
                        help="copy the stack's process logs to DIR at the end")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from vpcnet_sim.embedded.procs import unwind_on_sigterm

    if args.pods < 1:
        print("--pods must be at least 1", file=sys.stderr)
        return 2
    if args.warm_ip_target < 0 or args.cooldown < 0:
        print("--warm-ip-target and --cooldown must not be negative", file=sys.stderr)
        return 2
    instance_type = args.instance_type or ("c5.xlarge" if args.pods <= 56 else "m5.4xlarge")
    warm = args.warm_ip_target if args.mode == Mode.WARM.value else 0
    unwind_on_sigterm()

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="vpcnet-burst-"))
    try:
        result = run_burst(args.pods, args.mode, instance_type, warm, args.cooldown, workdir, say,
                           story=say if args.timeline else None)
    except BenchError as e:
        print(f"bench burst: {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep_logs is not None and (workdir / "logs").is_dir():
            shutil.copytree(workdir / "logs", args.keep_logs, dirs_exist_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
    summary = result.summary()
    if not args.json:
        for k, v in summary.items():
            print(f"{k:24} {json.dumps(v)}")
        rtt = result.assign_rtt
        if rtt:  # issue 13's warm-burst target, readable from this one run
            print(f"{'p99 vs target':24} add_p99_ms {result.first.p99_ms} against one Assign "
                  f"round trip + 1 s: {rtt['p50'] + 1000:.1f} (p50), {rtt['max'] + 1000:.1f} (max)")
    else:
        print(json.dumps(summary, sort_keys=True))
    return 0


__all__ = ["BurstResult", "BurstStats", "run_burst"]
