"""``vpcnet bench storm``: N nodes join at once; how close do we get to what AWS allows?

The whole control plane runs for real (watcher, Celery workers, Redis, the shared rate
limiter) against the EC2 emulator with AWS's per-action token buckets and the ``aws``
latency preset. Nodes are API-only: an instance in EC2 and a Node in the Kubernetes
emulator; a stand-in for each node's agent reports ready once every ENI in the node's
Redis state reads ``attached`` in EC2 (what a real agent waits for: the link to appear).
A node counts as ready when its ``vpcnet.io/not-ready`` taint is gone. The workers run as
the worker Deployment runs them (``vpcnet.tasknames.WORKER_POOLS``): ``--workers`` processes
of ``--concurrency`` threads on the EC2 queue, and one of ``--scan-concurrency`` threads on
the scan queue (node_ready); ``--scan-concurrency 0`` is the layout before, every worker on
every queue.

The lower bound is what the buckets and latencies impose on this work alone: for each
EC2 action with K calls in total (N x the plan's minimum per node) and a bucket of
capacity C refilling at r/s, its last call cannot start before (K - C) / r; add the
shortest latency of that call and of what must follow it on the same node. The bound is
the largest of these and of one node's own chain, which depends on the mode (full:
DescribeInstances, then each ENI's Create -> Attach -> attached in parallel; warm and
prefix: DescribeInstances -> AssignPrivateIpAddresses). Our time is reported as a ratio
of that bound, with the p50/p99 of the nodes' join times.

Two bounds, both reported: ``lower_bound_seconds`` (and ``ratio``) at AWS's full bucket
rates, and ``lower_bound_at_share_seconds`` (and ``ratio_at_share``) at the share of each
bucket vpcnet is told to use (``--rate-share s``: its limiter holds floor(C * s) tokens
refilling at s * r/s, ``vpcnet.aws.ratelimit.Rate.share_of``), which is the best vpcnet
can do when it leaves the rest of each bucket to the account's other clients. Only the
bucket-bound terms change with the share; one node's chain does not. A target such as
"<= 1.05x the bound at rate share 0.95" is meant against the bound at the share: against
the full-rate bound a bucket-bound storm cannot go below ~1/s (1.053 at 0.95).

``--time-scale K`` runs the emulator's clock (latencies, attach delays, buckets) and
vpcnet's limiter K times faster, so a storm of AWS's shape takes 1/K of the time; the
bound is computed on the same clock. vpcnet's own work is not scaled, so the ratio is
conservative (it weighs K times more than it would against AWS).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from vpcnet.aws.buckets import bucket_for
from vpcnet.aws.ratelimit import Rate
from vpcnet.domain import InstanceLimits, Mode
from vpcnet.settings import Settings
from vpcnet.state.keys import ClusterKeys
from vpcnet.state.records import AgentRecord
from vpcnet.tasknames import SCAN_WORKERS
from vpcnet.wellknown import NOT_READY_TAINT, TAG_CLUSTER
from vpcnet_sim.embedded.procs import unwind_on_sigterm, wait_for
from vpcnet_sim.embedded.stack import EmbeddedStack, StackOptions

# What a node's join needs, as a graph: an action's successors must wait for its answer.
# Full mode: DescribeInstances, then in parallel the primary's AssignPrivateIpAddresses
# and one chain per further ENI: Create -> Attach -> (attached after the attach delay,
# and ModifyNetworkInterfaceAttribute, which needs only the attachment id). Warm and
# prefix modes: DescribeInstances -> AssignPrivateIpAddresses on the primary ENI.
# A node is ready when every branch has ended (the agent waits for the links).
_NEEDS_ANSWER_OF = {
    "DescribeInstances": ("AssignPrivateIpAddresses", "CreateNetworkInterface"),
    "CreateNetworkInterface": ("AttachNetworkInterface",),
    "AttachNetworkInterface": ("attach_delay", "ModifyNetworkInterfaceAttribute"),
}


# Four /16 subnets (the emulator, like AWS by default, allows five IPv4 CIDRs per VPC):
# room for ~262k addresses, i.e. ~4,300 m5.xlarge in full mode (60 each).
STORM_CIDRS = ("10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16", "10.4.0.0/16")


@dataclass
class StormResult:
    nodes: int
    instance_type: str
    mode: str
    nodes_ready: int = 0
    seconds: float = 0.0
    # The bound at AWS's full bucket rates, and our time against it.
    lower_bound_seconds: float = 0.0
    ratio: float | None = None  # None when the bound is 0 (nothing throttles, no latency)
    # The bound at ``rate_limit_share`` of every bucket (what vpcnet is allowed to use), and
    # our time against it: the one a target "at rate share s" is meant against (the
    # full-rate ``ratio`` of a bucket-bound storm has a floor of ~1/s).
    lower_bound_at_share_seconds: float = 0.0
    ratio_at_share: float | None = None
    # p50 node-ready time as a share of ``seconds`` (the target: <= 0.55).
    p50_of_total: float | None = None
    nodes_error: int = 0
    p50_node_seconds: float = 0.0
    p99_node_seconds: float = 0.0
    ec2_calls: dict[str, int] = field(default_factory=dict)
    ec2_calls_per_node: float = 0.0
    min_ec2_calls_per_node: int = 0
    min_calls_by_action: dict[str, int] = field(default_factory=dict)
    throttled_by_ec2: int = 0
    throttled_surfaced: int = 0
    leaked_enis: int = 0
    duplicate_ips: int = 0
    failed_tasks: int = 0
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    bound_by_action: dict[str, float] = field(default_factory=dict)
    bound_by_action_at_share: dict[str, float] = field(default_factory=dict)
    ready_curve: list[tuple[float, int]] = field(default_factory=list)
    bound_curve: list[tuple[float, int]] = field(default_factory=list)
    latency_preset: str = "aws"
    throttling: bool = True
    rate_limit_share: float = 0.8
    # >1: EC2's clock (latencies, delays, buckets) and vpcnet's limiter ran this many
    # times faster; seconds are measured seconds, ``aws_equivalent_seconds`` x K.
    time_scale: float = 1.0
    aws_equivalent_seconds: float = 0.0
    # Threads of the worker that consumes only the scan queue (node_ready), as the worker
    # Deployment runs it; 0: one kind of worker consumes every queue (the layout before).
    scan_worker_concurrency: int = 0
    one_node_chain_seconds: float = 0.0
    # The same chain at the latencies' means: what a lone join with no overhead of ours
    # takes on average (the bound is the luckiest draw of every call's jitter).
    one_node_typical_chain_seconds: float = 0.0
    # From the emulator's call log (None with --ec2-process): the seconds of the run
    # during which EC2 had some call of ours in flight or an attachment settling (its
    # own time, as realized: latencies with their jitter, its processing), and the rest
    # of ``seconds``: when EC2 had nothing of ours to do (vpcnet's hops and waits, the
    # stand-in agent's and this bench's polls). Extra information: the ratio stays
    # against the bound.
    ec2_busy_seconds: float | None = None
    outside_ec2_seconds: float | None = None


def min_latency(cfg: Any, step: str) -> float:
    if step == "attach_delay":
        return float(cfg.attach_delay)
    lat = cfg.latency_for(step)
    return float(lat.seconds * (1.0 - lat.jitter))


def typical_latency(cfg: Any, step: str) -> float:
    """The middle of the jitter (the mean of its uniform draw), where ``min_latency`` is
    the luckiest draw."""
    if step == "attach_delay":
        return float(cfg.attach_delay)
    return float(cfg.latency_for(step).seconds)


Latencies = Callable[[Any, str], float]


def chain_tail(calls_per_node: dict[str, int], cfg: Any, action: str,
               latency: Latencies = min_latency) -> float:
    """The shortest time (at ``latency``) from ``action``'s answer until the node is ready."""
    steps = [s for s in _NEEDS_ANSWER_OF.get(action, ())
             if s == "attach_delay" or calls_per_node.get(s, 0) > 0]
    return max((latency(cfg, s) + chain_tail(calls_per_node, cfg, s, latency) for s in steps),
               default=0.0)


def one_node_chain(calls_per_node: dict[str, int], cfg: Any,
                   latency: Latencies = min_latency) -> float:
    """One node alone, with full buckets: its longest chain of calls and waits."""
    return (latency(cfg, "DescribeInstances")
            + chain_tail(calls_per_node, cfg, "DescribeInstances", latency))


def ec2_busy_seconds(calls: list[tuple[str, float, float]], attach_delay: float,
                     end: float) -> float:
    """The length of the union, within [0, ``end``], of every call's (action, arrival,
    answer) interval and of each attachment's settling (``attach_delay`` after its
    AttachNetworkInterface was answered): the time EC2 was busy with our work."""
    spans = [(start, done) for _, start, done in calls]
    spans += [(done, done + attach_delay) for action, _, done in calls
              if action == "AttachNetworkInterface"]
    busy, reached = 0.0, 0.0
    for start, done in sorted((max(0.0, a), min(end, b)) for a, b in spans):
        begin = max(start, reached)
        if done <= begin:
            continue  # inside what is counted already, or outside [0, end]
        busy += done - begin
        reached = done
    return busy


def bound_curve(
    calls_per_node: dict[str, int], nodes: int, cfg: Any, points: int = 200
) -> list[tuple[float, int]]:
    """(earliest time, k): the k-th node cannot be ready before the bound of k joins."""
    step = max(1, nodes // points)
    ks = sorted({*range(step, nodes + 1, step), nodes})
    return [(round(lower_bound(calls_per_node, k, cfg)[0], 2), k) for k in ks]


def lower_bound(
    calls_per_node: dict[str, int], nodes: int, cfg: Any, share: float = 1.0
) -> tuple[float, dict[str, float]]:
    """Seconds the AWS buckets and latencies impose on N joins (see the module doc); with
    the emulator's throttling off, the latencies alone. On a time-scaled emulator, in
    its (faster) seconds. ``share`` < 1: the bound for a client allowed only that share
    of each bucket (capacity and refill, as vpcnet's limiter mirrors it); 1: AWS's full
    buckets."""
    per_action: dict[str, float] = {}
    for action, per_node in calls_per_node.items():
        total = per_node * nodes
        bucket = bucket_for(action).scaled(float(getattr(cfg, "time_scale", 1.0)))
        rate = Rate.share_of(bucket, share)
        start_of_last = 0.0
        if cfg.throttle:
            start_of_last = max(0.0, (total - rate.capacity) / rate.per_second)
        per_action[action] = (start_of_last + min_latency(cfg, action)
                              + chain_tail(calls_per_node, cfg, action))
    per_action["one-node chain"] = one_node_chain(calls_per_node, cfg)
    return max(per_action.values()), per_action


class StandInAgents(threading.Thread):
    """API-only nodes' agents: report ready once the node's ENIs are attached in EC2,
    exactly as the real agent's Redis report does (agent hash + agent-ready publish)."""

    def __init__(self, stack: EmbeddedStack, names: list[str]) -> None:
        super().__init__(name="standin-agents", daemon=True)
        self.stack = stack
        self.pending = set(names)
        self.keys = ClusterKeys(stack.opts.cluster)
        self.stop_event = threading.Event()

    def run(self) -> None:
        client = self.stack.redis.client()
        try:
            # A pass costs ~20 us per pending node: keep it a small share of a core (and
            # poll often when few are pending, so a lone node's time is not our poll's:
            # 5 ms against a prefix-mode bound of 0.21 s).
            while self.pending and not self.stop_event.wait(max(0.005, len(self.pending) / 5000)):
                self._pass(client)
        finally:
            client.close()

    def _pass(self, client: redis.Redis[bytes]) -> None:
        names = sorted(self.pending)
        pipe = client.pipeline(transaction=False)
        for n in names:
            pipe.hmget(self.keys.node(n).node, "phase", "instance_id", "epoch", "generation",
                       "write_id")
            pipe.hkeys(self.keys.node(n).enis)
        rows = pipe.execute()
        for i, n in enumerate(names):
            phase, instance_id, epoch, generation, write_id = (
                x.decode() if x else "" for x in rows[2 * i]
            )
            eni_ids = {x.decode() for x in rows[2 * i + 1]}
            if phase not in ("provisioned", "ready") or not generation or not instance_id:
                continue
            view = self.stack.ec2.instance_view(instance_id)
            attached = {e["eni_id"] for e in view.get("enis", []) if e.get("status") == "attached"}
            if not eni_ids <= attached:
                continue
            k = self.keys.node(n)
            with client.pipeline(transaction=True) as p:
                standin = AgentRecord(ready=True, epoch=epoch, generation=int(generation),
                                      write_id=write_id, heartbeat=time.time(), version="standin")
                p.hset(k.agent, mapping=standin.to_redis())
                p.publish(self.keys.agent_ready_channel, n)
                p.execute()
            self.pending.discard(n)


def _proc_stats(pid: int) -> tuple[float, float]:
    """(peak RSS MiB, CPU seconds) of a live process and its children, from /proc."""
    peak_kb = 0
    cpu = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            pids.append(int(child))
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb += int(line.split()[1])
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / tick
    return peak_kb / 1024, cpu


def _check_result(stack: EmbeddedStack, result: StormResult) -> None:
    """Leaked ENIs (unattached, ours) and IPs held by two ENIs, straight from EC2."""
    views = stack.ec2.instances_view()
    seen: Counter[str] = Counter()
    for v in views:
        for e in v.get("enis", []):
            for ip in [e.get("primary_ip"), *e.get("secondary_ips", [])]:
                if ip:
                    seen[ip] += 1
    client = stack.ec2.client()
    paginator = client.get_paginator("describe_network_interfaces")
    leaked = 0
    for page in paginator.paginate(
        Filters=[{"Name": f"tag:{TAG_CLUSTER}", "Values": [stack.opts.cluster]}]
    ):
        for eni in page["NetworkInterfaces"]:
            if eni.get("Status") == "available":
                leaked += 1
    result.leaked_enis = leaked
    result.duplicate_ips = sum(1 for n in seen.values() if n > 1)


def join_minimum(instance_type: str, mode: str) -> dict[str, int]:
    """EC2 calls per node the plan needs at least for one clean join (default targets)."""
    from vpcnet.limits import bundled_limits
    from vpcnet.plan import EniConfig, NodeSpec, min_join_calls

    known = bundled_limits(instance_type)
    if known is None:
        raise ValueError(f"unknown instance type {instance_type!r}")
    limits: InstanceLimits = known
    spec = NodeSpec(
        cluster="bench", node_name="n", instance_id="i-0", limits=limits, mode=Mode(mode),
        eni_config=EniConfig("subnet-0", ("sg-0",)),
    )
    return min_join_calls(spec)


def run_storm(
    nodes: int,
    instance_type: str,
    mode: str,
    latency: str,
    throttle: bool,
    rate_share: float,
    workers: int,
    concurrency: int,
    timeout: float,
    workdir: Path,
    progress: Any = None,
    *,
    ec2_process: bool = False,
    time_scale: float = 1.0,
    scan_concurrency: int = SCAN_WORKERS.concurrency or 4,
) -> StormResult:
    min_calls = join_minimum(instance_type, mode)
    result = StormResult(nodes=nodes, instance_type=instance_type, mode=mode,
                         latency_preset=latency, throttling=throttle, rate_limit_share=rate_share,
                         time_scale=time_scale, scan_worker_concurrency=scan_concurrency)
    result.min_calls_by_action = dict(min_calls)
    result.min_ec2_calls_per_node = sum(min_calls.values())

    stack = EmbeddedStack(
        StackOptions(
            workdir=workdir, cluster="bench", mode=mode, ec2_latency=latency, ec2_throttle=throttle,
            worker_processes=workers, worker_concurrency=concurrency, beat=False, flower=False,
            scan_worker_concurrency=scan_concurrency,
            with_netns=False,
            extra_env={
                "VPCNET_RATE_LIMIT_SHARE": str(rate_share),
                # no throttling to stay under: measure vpcnet itself, not AWS's buckets
                "VPCNET_EC2_RATE_LIMIT": "1" if throttle else "0",
                # the limiter refills as fast as the emulator's scaled buckets
                "VPCNET_RATE_LIMIT_TIME_SCALE": str(time_scale),
            },
            extra_vpc_cidrs=STORM_CIDRS,
            ec2_process=ec2_process,
            ec2_time_scale=time_scale,
        )
    )
    try:
        stack.start_services()
        result.lower_bound_seconds, result.bound_by_action = lower_bound(
            min_calls, nodes, stack.ec2.config
        )
        # vpcnet's limiter runs at the share only when it runs at all.
        share = rate_share if throttle else 1.0
        result.lower_bound_at_share_seconds, result.bound_by_action_at_share = lower_bound(
            min_calls, nodes, stack.ec2.config, share
        )
        result.bound_curve = bound_curve(min_calls, nodes, stack.ec2.config)
        result.one_node_chain_seconds = round(one_node_chain(min_calls, stack.ec2.config), 3)
        result.one_node_typical_chain_seconds = round(
            one_node_chain(min_calls, stack.ec2.config, typical_latency), 3)
        names = [f"storm-{i:05d}" for i in range(nodes)]
        # Nodes go to the big subnets of the secondary CIDRs (indices after the /20s).
        first = len(stack.subnets) - len(STORM_CIDRS)
        launched = [
            stack.launch_node(n, instance_type, first + i % len(STORM_CIDRS))
            for i, n in enumerate(names)
        ]
        stack.start_control_plane()
        stack.wait_processes_up()
        # Nodes join a running control plane: its processes' start is not join time.
        stack.wait_control_plane_ready()
        stack.ec2.reset_counters()
        standin = StandInAgents(stack, names)
        standin.start()

        from kubernetes import client as k8s

        api = k8s.CoreV1Api(stack.kube.api_client())
        t0 = time.monotonic()
        for node in launched:
            stack.register_node(node)
        ready_at: dict[str, float] = {}
        sampler_peaks: dict[str, tuple[float, float]] = {}

        def sample() -> None:
            for p in stack.procs:
                if p.alive():
                    rss, cpu = _proc_stats(p.pid)
                    old = sampler_peaks.get(p.name, (0.0, 0.0))
                    sampler_peaks[p.name] = (max(old[0], rss), max(old[1], cpu))

        redis_client = stack.redis.client()
        node_keys = [stack.keys.node(n).node for n in names]

        def all_ready() -> bool:
            # Redis says READY only after node_ready removed the taint; one pipelined
            # read is far cheaper than listing thousands of Nodes from the emulator that
            # shares this process's GIL with EC2 (the taints are checked once at the end).
            pipe = redis_client.pipeline(transaction=False)
            for key in node_keys:
                pipe.hget(key, "phase")
            now = time.monotonic() - t0
            for name, phase in zip(names, pipe.execute(), strict=True):
                if phase == b"ready" and name not in ready_at:
                    ready_at[name] = now
            result.ready_curve.append((round(now, 2), len(ready_at)))
            sample()
            if progress is not None:
                progress(len(ready_at), nodes, now)
            dead = stack.dead_processes()
            if dead:
                raise RuntimeError(f"{dead[0].name} exited:\n{dead[0].tail()}")
            return len(ready_at) >= nodes

        with contextlib.suppress(TimeoutError):
            # Few nodes: poll often, the poll's period is an error on each join time.
            wait_for(all_ready, timeout, f"{nodes} nodes ready",
                     interval=1.0 if nodes > 200 else 0.5 if nodes > 20 else 0.01)
        redis_client.close()
        # READY in Redis must mean untainted in Kubernetes: count only nodes that are both.
        raw: Any = api.list_node(_preload_content=False)
        listed = json.loads(raw.data)["items"]
        tainted = {
            item["metadata"]["name"]
            for item in listed
            if any(t["key"] == NOT_READY_TAINT for t in item.get("spec", {}).get("taints") or [])
        }
        for name in tainted:
            ready_at.pop(name, None)
        result.seconds = round(max(ready_at.values(), default=time.monotonic() - t0), 2)
        result.nodes_ready = len(ready_at)
        standin.stop_event.set()
        times = sorted(ready_at.values())
        if times:
            result.p50_node_seconds = round(times[len(times) // 2], 2)
            result.p99_node_seconds = round(times[min(len(times) - 1, int(len(times) * 0.99))], 2)
        if result.lower_bound_seconds:
            result.ratio = round(result.seconds / result.lower_bound_seconds, 3)
        if result.lower_bound_at_share_seconds:
            result.ratio_at_share = round(result.seconds / result.lower_bound_at_share_seconds, 3)
        if result.seconds and times:
            result.p50_of_total = round(result.p50_node_seconds / result.seconds, 3)
        result.aws_equivalent_seconds = round(result.seconds * time_scale, 1)
        logged = getattr(stack.ec2, "calls", None)  # the in-process emulator's call log
        if logged is not None:
            calls = [(c.action, c.received - t0, c.answered - t0) for c in logged()]
            busy = ec2_busy_seconds(calls, float(stack.ec2.config.attach_delay), result.seconds)
            result.ec2_busy_seconds = round(busy, 3)
            result.outside_ec2_seconds = round(result.seconds - busy, 3)
        result.nodes_error = sum(1 for n in names if stack.node_phase(n) == "error")
        counters = stack.ec2.counters()
        result.ec2_calls = dict(sorted(counters.get("calls", {}).items()))
        result.ec2_calls_per_node = round(sum(result.ec2_calls.values()) / max(nodes, 1), 2)
        result.throttled_by_ec2 = sum(counters.get("throttled", {}).values())
        result.throttled_surfaced, result.failed_tasks = _surfaced_errors(stack)
        _check_result(stack, result)
        for name, (rss, cpu) in sampler_peaks.items():
            result.peak_rss_mb[name] = round(rss, 1)
            result.cpu_seconds[name] = round(cpu, 1)
        result.peak_rss_mb["bench+emulators"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        )
    finally:
        stack.stop()
    return result


def _surfaced_errors(stack: EmbeddedStack) -> tuple[int, int]:
    """RequestLimitExceeded that reached a task (logged as a retry or failure) and failed
    tasks, from the workers' logs (the structured task outcome lines)."""
    surfaced = failed = 0
    for p in stack.procs:
        if not p.name.startswith("worker"):
            continue
        with contextlib.suppress(FileNotFoundError):
            for line in p.log_path.read_text(errors="replace").splitlines():
                if "RequestLimitExceeded" in line:
                    surfaced += 1
                if " raised unexpected" in line or "failed:" in line.lower():
                    failed += 1
    return surfaced, failed


def _plot(result: StormResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [t for t, _ in result.ready_curve]
    ys = [n for _, n in result.ready_curve]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(xs, ys, label="nodes ready (vpcnet)")
    bx = [0.0, *(t for t, _ in result.bound_curve)]
    by = [0, *(k for _, k in result.bound_curve)]
    ax.step(bx, by, where="post", color="red", linestyle="--",
            label=f"lower bound (AWS buckets + latency), all by {result.lower_bound_seconds:.1f}s")
    ax.set_xlabel("seconds since the nodes registered")
    ax.set_ylabel("nodes ready")
    ax.set_title(f"Join storm: {result.nodes} x {result.instance_type} ({result.mode}), "
                 f"ratio {result.ratio}")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("storm", help="N nodes join at once")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--instance-type", default="m5.xlarge")
    parser.add_argument("--mode", choices=[m.value for m in Mode], default="full")
    parser.add_argument("--latency", choices=["aws", "fast"], default="aws")
    parser.add_argument("--no-throttle", dest="throttle", action="store_false",
                        help="turn AWS throttling off in the emulator and vpcnet's limiter "
                             "(to measure resource use at scale)")
    parser.add_argument("--rate-share", type=float, default=Settings().rate_limit_share,
                        help="share of AWS's buckets vpcnet allows itself "
                             "(VPCNET_RATE_LIMIT_SHARE; default: the production default)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=64, help="threads per worker")
    parser.add_argument("--scan-concurrency", type=int, default=SCAN_WORKERS.concurrency,
                        help="threads of the worker for the scan queue (node_ready), as the "
                             "worker Deployment runs it; 0: the workers consume every queue")
    parser.add_argument("--time-scale", type=float, default=1.0, metavar="K",
                        help="run EC2's latencies, delays and token buckets and vpcnet's rate "
                             "limiter K times faster (vpcnet's own overhead is not scaled, so "
                             "the ratio to the bound stays conservative)")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--ec2-process", action="store_true",
                        help="run the EC2 emulator as its own process (for thousands of nodes)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plot", type=Path, default=None)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    unwind_on_sigterm()
    console = Console(stderr=True)
    if args.nodes < 1:
        console.print("--nodes must be at least 1")
        return 2
    if not args.time_scale > 0:
        console.print("--time-scale must be positive")
        return 2
    last = [0.0]

    def progress(ready: int, total: int, now: float) -> None:
        if now - last[0] >= 5 or ready == total:
            last[0] = now
            console.print(f"  {now:7.1f}s  {ready}/{total} nodes ready")

    with tempfile.TemporaryDirectory(prefix="vpcnet-storm-") as tmp:
        result = run_storm(args.nodes, args.instance_type, args.mode, args.latency, args.throttle,
                           args.rate_share, args.workers, args.concurrency, args.timeout,
                           Path(tmp), progress, ec2_process=args.ec2_process,
                           time_scale=args.time_scale, scan_concurrency=args.scan_concurrency)
    if args.plot:
        _plot(result, args.plot)
    summary = {k: v for k, v in asdict(result).items() if k not in ("ready_curve", "bound_curve")}
    if not args.json:
        table = Table(title=f"join storm: {result.nodes} x {result.instance_type} ({result.mode})")
        table.add_column("metric")
        table.add_column("value")
        labels = {
            "lower_bound_seconds": "lower bound at AWS's full rates (s)",
            "ratio": "ratio to the full-rate bound",
            "lower_bound_at_share_seconds": f"lower bound at rate share {result.rate_limit_share} (s)",
            "ratio_at_share": f"ratio to the bound at share {result.rate_limit_share}",
        }
        for k in ("rate_limit_share", "time_scale", "scan_worker_concurrency", "nodes_ready", "nodes_error", "seconds",
                  "lower_bound_seconds", "ratio", "lower_bound_at_share_seconds",
                  "ratio_at_share", "one_node_chain_seconds",
                  "one_node_typical_chain_seconds", "ec2_busy_seconds",
                  "outside_ec2_seconds", "aws_equivalent_seconds",
                  "p50_node_seconds", "p50_of_total",
                  "p99_node_seconds", "ec2_calls_per_node", "min_ec2_calls_per_node",
                  "throttled_by_ec2", "throttled_surfaced", "failed_tasks", "leaked_enis",
                  "duplicate_ips"):
            table.add_row(labels.get(k, k), str(summary[k]))
        table.add_row("EC2 calls by action", json.dumps(result.ec2_calls))
        table.add_row("plan minimum per node", json.dumps(result.min_calls_by_action))
        table.add_row("bound by action, full rates (s)", json.dumps({k: round(v, 1) for k, v in result.bound_by_action.items()}))
        table.add_row(f"bound by action, share {result.rate_limit_share} (s)", json.dumps(
            {k: round(v, 1) for k, v in result.bound_by_action_at_share.items()}))
        table.add_row("peak RSS MiB", json.dumps(result.peak_rss_mb))
        table.add_row("CPU seconds", json.dumps(result.cpu_seconds))
        Console().print(table)
    print(json.dumps(summary))
    ok = result.nodes_ready == result.nodes and not result.leaked_enis and not result.duplicate_ips
    return 0 if ok else 1
