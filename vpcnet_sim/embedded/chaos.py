"""Chaos for the embedded stack: fault injectors, churn drivers and the convergence check.

``run_chaos`` is what ``vpcnet chaos`` and tests/e2e/test_chaos.py run: a few nodes are
network namespaces with real agents and pods made by exec'ing the real plugin (the
*netns nodes*); long-running pods are created on them first and recorded. Then the
faults start and, while they last, many API-only nodes join and pods churn:

- Celery workers are ``kill -9``'d every few seconds and restarted a moment later (a
  Deployment's restart); Redis is restarted (alternately a clean stop and a ``kill -9``;
  AOF on); agents are ``kill -9``'d and restarted; the EC2 emulator answers a share of
  calls with 5xx and injected ``RequestLimitExceeded`` on top of AWS's token buckets;
- the netns nodes' pods come and go through the plugin (ADD, CHECK, DEL, as a runtime
  does: a failed ADD or DEL is retried with DEL until it succeeds);
- API-only nodes' stand-in agents (the real IPAM and Redis mirror of ``vpcnet.agent``,
  without netlink) take and return IPs.

With ``redis="sentinel"`` the world runs on a Sentinel group (a primary, a replica,
three sentinels) instead of one Redis, and the Redis fault is a failover that loses
acknowledged writes (``SentinelGroup.lose_writes_in_failover``: the replica's link cut,
the system writing on to the primary, the primary frozen, the replica promoted); after
each, the safety invariants are checked at once (no IP held twice by the agents' own
records, every long-running pod on its IP and pinging). With ``hostile`` a compromised
node's credential (vpcnet_sim.embedded.hostile) keeps trying the other nodes' keys, the
queues and the locks for the whole run; every attempt must be refused.
With ``node_users`` the netns agents log in as their own node's ACL user, fetched from
vpcnet's credential issuer (``vpcnet.credentials``, HTTP on loopback, its TokenReview a
token table) with a token of their own; the control plane and the stand-ins keep the
password login.

Then the faults stop, and ``wait_converged`` waits for: every node ready and untainted,
``audit`` clean, no unattached ENI of the cluster left, and each agent's Redis mirror
equal to its checkpoint with no IP held but by a live pod. Finally every long-running
pod must have kept its IP, pass CHECK and ping every other. The same world serves the
Redis-loss and Redis-outage tests (``ChaosWorld``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vpcnet.agent.checkpoint import Checkpoint
from vpcnet.domain import NodePhase
from vpcnet.errors import VpcnetError
from vpcnet.state.connection import connect
from vpcnet.state.records import PHASE_FIELD, parse_phase
from vpcnet.wellknown import NOT_READY_TAINT
from vpcnet_sim.embedded.churn import (
    POD_NAMESPACE,
    PodChurn,
    StandInAgent,
    StandInDriver,
    Tally,
    TrackedPod,
)
from vpcnet_sim.embedded.hostile import ISSUER_USER, HostileAgent, Victim, issuer_rules
from vpcnet_sim.embedded.known_crashes import (
    KnownCrash,
    Outage,
    judge,
    match_known_crash,
    outage_of,
)
from vpcnet_sim.embedded.procs import ManagedProcess, RedisServer, wait_for
from vpcnet_sim.embedded.sentinel import SERVICE as SENTINEL_SERVICE
from vpcnet_sim.embedded.sentinel import LostWriteFailover, SentinelGroup
from vpcnet_sim.embedded.stack import EmbeddedStack, SimNode, StackOptions
from vpcnet_sim.netns import ping
from vpcnet_sim.runtime import CniError, PodRuntime

CNI_REFERENCE_DIR = Path("/usr/lib/cni")
REDIS_KINDS = ("single", "sentinel")
AGENT_SERVICE_ACCOUNT = "system:serviceaccount:vpcnet-system:vpcnet-agent"
NETNS_TYPES = ("m5.large", "c5.xlarge", "m5.xlarge")
API_TYPES = ("t3.medium", "m5.large")

# Control-plane timings for a run measured in minutes (the defaults suit a cluster that
# lives for months): reconcile and GC often, a short ENI grace, and a visibility timeout
# that brings back within a minute the tasks a killed worker had reserved.
FAST_CONTROL_ENV = {
    "VPCNET_RECONCILE_INTERVAL_SECONDS": "5",
    "VPCNET_GC_INTERVAL_SECONDS": "10",
    "VPCNET_WARM_POOL_INTERVAL_SECONDS": "5",
    "VPCNET_BROKER_VISIBILITY_TIMEOUT_SECONDS": "60",
    "VPCNET_TASK_TIME_LIMIT_SECONDS": "45",
}


@dataclass(frozen=True)
class ChaosOptions:
    workdir: Path
    nodes: int = 50  # in all, netns nodes included
    netns_nodes: int = 3
    seconds: float = 60.0  # how long the faults last
    long_running_pods: int = 3  # per netns node, created before the faults
    churn_pods: int = 3  # per netns node, alive at once at most during the churn
    worker_processes: int = 2
    worker_concurrency: int = 8
    worker_kill_every: float = 4.0
    worker_restart_after: float = 1.0
    redis_restart_every: float = 20.0
    redis_down_for: float = 1.0
    agent_restart_every: float = 8.0
    ec2_5xx_rate: float = 0.10
    ec2_throttle_rate: float = 0.05  # injected RequestLimitExceeded, on top of the buckets
    converge_timeout: float = 240.0
    seed: int = 1
    cluster: str = "chaos"
    netns_prefix: str = ""  # "" = a fresh random one
    # "single": one Redis, restarted (clean and kill -9) every redis_restart_every;
    # "sentinel": a Sentinel group, a lossy failover every failover_every instead.
    redis: str = "single"
    failover_every: float = 20.0
    failover_window: float = 2.0  # seconds the system writes to the cut-off primary
    hostile: bool = False  # a compromised node's credential attacks the others
    # netns agents log in as their own node's ACL user, fetched from a credential issuer
    node_users: bool = False

    def __post_init__(self) -> None:
        if self.redis not in REDIS_KINDS:
            raise ValueError(f"redis must be one of {', '.join(REDIS_KINDS)}, not {self.redis!r}")


@dataclass
class ChaosReport:
    nodes: int = 0
    netns_nodes: int = 0
    api_nodes: int = 0
    nodes_ready: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    pods: dict[str, int] = field(default_factory=dict)
    # failed ADDs (and CHECKs, prefixed "CHECK") of the churn, by CNI error code and message
    add_failures: dict[str, int] = field(default_factory=dict)
    unexpected_exits: dict[str, int] = field(default_factory=dict)
    # Celery workers that exited on a lost broker connection (an upstream Celery/kombu
    # bug, see vpcnet_sim.embedded.known_crashes) and were restarted as a Deployment would:
    # by worker, and each with its signature and the Redis outage it happened in.
    worker_broker_loss_crashes: dict[str, int] = field(default_factory=dict)
    known_crashes: list[dict[str, Any]] = field(default_factory=list)
    redis_outages: int = 0
    redis: str = "single"
    # each lossy failover, measured, with the safety problems found right after it
    failovers: list[dict[str, Any]] = field(default_factory=list)
    # totals over the failovers: markers lost everywhere, keys lost or stale, bytes
    lost_writes: dict[str, int] = field(default_factory=dict)
    # the hostile agent's attempts and refusals (vpcnet_sim.embedded.hostile)
    hostile: dict[str, Any] = field(default_factory=dict)
    # node_users: credentials the issuer gave each netns agent; the primary's ACL LOG
    agent_credentials: dict[str, int] = field(default_factory=dict)
    acl_denials: dict[str, int] = field(default_factory=dict)
    violations: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # besides the audit's violations
    ip_changed: list[str] = field(default_factory=list)
    check_failed: list[str] = field(default_factory=list)
    ping_failed: list[str] = field(default_factory=list)
    seconds_join_before: float = 0.0
    seconds_chaos: float = 0.0
    seconds_converge: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not (
            self.error or self.violations or self.problems or self.ip_changed
            or self.check_failed or self.ping_failed or self.unexpected_exits
        ) and self.nodes_ready == self.nodes

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass(frozen=True)
class _AgentIdentity:
    """A reviewed agent token (vpcnet.credentials.review.ReviewedToken)."""

    username: str
    pod_name: str | None
    node_name: str | None


# -- the world ------------------------------------------------------------------------------


class ChaosWorld:
    """The embedded stack plus what the chaos needs: mixed nodes, pods, fault injectors."""

    def __init__(self, opts: ChaosOptions, *, control_env: dict[str, str] | None = None,
                 flower: bool = False) -> None:
        self.opts = opts
        self.rng = random.Random(opts.seed)
        prefix = opts.netns_prefix or f"vpcc{secrets.token_hex(2)}-"
        self.redis_password = secrets.token_urlsafe(18)
        self.aws_secret = secrets.token_urlsafe(30)
        self.stack = EmbeddedStack(
            StackOptions(
                workdir=opts.workdir,
                cluster=opts.cluster,
                ec2_latency="fast",
                ec2_throttle=True,
                worker_processes=opts.worker_processes,
                worker_concurrency=opts.worker_concurrency,
                flower=flower,
                netns_prefix=prefix,
                ip_cooldown_seconds=10.0,
                eni_gc_grace_seconds=20.0,
                extra_env={**FAST_CONTROL_ENV, "AWS_SECRET_ACCESS_KEY": self.aws_secret,
                           **(control_env or {})},
            )
        )
        # Redis with a password, as deployed: every component's URL carries it.
        self.stack.redis = (
            SentinelGroup(opts.workdir / "redis", password=self.redis_password)
            if opts.redis == "sentinel"
            else RedisServer(opts.workdir / "redis", password=self.redis_password)
        )
        self.issuer_password = secrets.token_urlsafe(18)
        self.failovers: list[tuple[LostWriteFailover, list[str]]] = []
        self.failover_errors: list[str] = []
        self._failover_thread: threading.Thread | None = None
        self.hostile: HostileAgent | None = None
        self.credential_server: Any = None  # vpcnet.credentials.server.CredentialServer
        self._agent_tokens: dict[str, str] = {}  # token -> node (the issuer's TokenReview)
        self.credentials_issued = Tally()  # by node: the agents' own logins
        self.tally = Tally()
        self.faults = Tally()
        self.add_failures = Tally()
        self.unexpected = Tally()
        self.exit_notes: list[str] = []  # why a process died on its own (log tails)
        # upstream Celery crashes on a lost broker connection, and the outages they need
        self.known_crashes: list[KnownCrash] = []
        self.redis_outages: list[Outage] = []
        self._down_at = 0.0  # unix time of the last redis_down
        self.netns_nodes: list[SimNode] = []
        self.api_nodes: list[SimNode] = []
        self.standins: dict[str, StandInAgent] = {}
        self.standin_driver = StandInDriver(self)
        self.long_running: list[TrackedPod] = []
        self.churners: list[PodChurn] = []
        self._runtimes: dict[str, PodRuntime] = {}
        self._restarts: list[tuple[float, ManagedProcess]] = []
        self._killed: set[int] = set()  # pids we killed ourselves
        self._kube_lock = threading.Lock()
        self._core: Any = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self.stack.start_services()
        if self.opts.hostile or self.opts.node_users:
            self.install_issuer_user()
        if self.opts.node_users:
            self.start_credential_issuer()
        self.stack.start_vpc()
        self.stack.start_control_plane()
        self.stack.wait_processes_up()
        from kubernetes import client as k8s

        self.core().create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=POD_NAMESPACE)))
        self.standin_driver.start()

    def stop(self) -> None:
        self.stop_hostile()
        if self._failover_thread is not None:
            self._failover_thread.join(120)
        for churn in self.churners:
            churn.stop_event.set()
        for churn in self.churners:
            churn.join(10)
        self.standin_driver.stop_event.set()
        if self.standin_driver.is_alive():
            self.standin_driver.join(10)
        for agent in self.standins.values():
            with contextlib.suppress(Exception):
                agent.close()
        for tracked in [*self.long_running, *(p for c in self.churners for p in c.alive)]:
            with contextlib.suppress(Exception):
                self.runtime_by_name(tracked.node).destroy(tracked.pod)
        self.stack.stop()  # removes every namespace of the prefix, pods' included
        if self.credential_server is not None:
            self.credential_server.stop()

    @contextlib.contextmanager
    def running(self) -> Iterator[ChaosWorld]:
        try:
            self.start()
            yield self
        finally:
            self.stop()

    # -- nodes ------------------------------------------------------------------------

    def launch_netns_nodes(self, count: int, first_index: int = 0) -> list[SimNode]:
        nodes = []
        for i in range(first_index, first_index + count):
            node = self.stack.launch_node(f"ns-{i}", NETNS_TYPES[i % len(NETNS_TYPES)], i)
            self.stack.register_node(node)
            nodes.append(node)
        self.netns_nodes += nodes
        return nodes

    def launch_api_nodes(self, count: int, first_index: int = 0) -> list[SimNode]:
        """Instances and Nodes without a namespace; their agents are stand-ins."""
        nodes = []
        for i in range(first_index, first_index + count):
            name = f"api-{i:03d}"
            subnet_id, az = self.stack.subnets[i % len(self.stack.subnets)]
            itype = API_TYPES[i % len(API_TYPES)]
            iid = self.stack.ec2.run_instance(
                instance_type=itype, subnet_id=subnet_id, name=name,
                security_group_ids=[self.stack.world.security_group_id],
            )
            node = SimNode(name, iid, itype, az, subnet_id)
            self.stack.nodes[name] = node
            self.standins[name] = StandInAgent(self.stack, node, random.Random(self.rng.random()))
            nodes.append(node)
        self.api_nodes += nodes
        for node in nodes:
            self.stack.register_node(node)
        return nodes

    def node_names(self) -> list[str]:
        return [n.name for n in (*self.netns_nodes, *self.api_nodes)]

    def nodes_ready(self, names: Iterable[str]) -> list[str]:
        """Those of ``names`` that are ready: phase ready in Redis and untainted."""
        nodes = {n["metadata"]["name"]: n for n in self._list_kube_nodes()}
        client = self.stack.redis.client()
        try:
            out = []
            for name in names:
                phase = parse_phase(client.hget(self.stack.keys.node(name).node, PHASE_FIELD))
                taints = (nodes.get(name, {}).get("spec") or {}).get("taints") or []
                if phase is NodePhase.READY and not any(t["key"] == NOT_READY_TAINT for t in taints):
                    out.append(name)
            return out
        finally:
            client.close()

    def wait_ready(self, names: list[str], timeout: float) -> None:
        def ready() -> bool:
            self.supervise()
            return len(self.nodes_ready(names)) == len(names)

        wait_for(ready, timeout, f"{len(names)} nodes ready", interval=0.5)

    def _list_kube_nodes(self) -> list[dict[str, Any]]:
        resp: Any = self.core().list_node(_preload_content=False)
        items: list[dict[str, Any]] = json.loads(resp.data)["items"]
        return items

    # -- pods -------------------------------------------------------------------------

    def core(self) -> Any:
        from kubernetes import client as k8s

        if self._core is None:
            self._core = k8s.CoreV1Api(self.stack.kube.api_client())
        return self._core

    def runtime(self, node: SimNode) -> PodRuntime:
        if node.name not in self._runtimes:
            assert node.conf_dir is not None and node.bin_dir is not None
            conflist = sorted(node.conf_dir.glob("*.conflist"))[0]
            self._runtimes[node.name] = PodRuntime(
                conflist, [node.bin_dir, CNI_REFERENCE_DIR],
                netns_prefix=f"{self.stack.opts.netns_prefix}p-",
            )
        return self._runtimes[node.name]

    def runtime_by_name(self, name: str) -> PodRuntime:
        return self.runtime(self.stack.nodes[name])

    def create_pods(self, node: SimNode, count: int, prefix: str) -> list[TrackedPod]:
        """Pods that must not fail (set-up, after-checks): a failure raises."""
        runtime = self.runtime(node)
        out = []
        for i in range(count):
            pod = runtime.new_pod(POD_NAMESPACE, f"{prefix}-{node.name}-{i}")
            try:
                runtime.add(pod)
            except Exception:
                runtime.remove_netns(pod)
                raise
            tracked = TrackedPod(node.name, pod, pod.ip)
            self.register_pod(tracked)
            out.append(tracked)
        return out

    def register_pod(self, tracked: TrackedPod) -> None:
        """The pod object with its IP, as kubelet reports it (the audit reads pods)."""
        from kubernetes import client as k8s

        body = k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(name=tracked.pod.name, namespace=POD_NAMESPACE),
            spec=k8s.V1PodSpec(node_name=tracked.node,
                               containers=[k8s.V1Container(name="app", image="pause")]),
        )
        with self._kube_lock:
            self.core().create_namespaced_pod(POD_NAMESPACE, body)
            self.core().patch_namespaced_pod_status(
                tracked.pod.name, POD_NAMESPACE,
                {"status": {"phase": "Running", "podIP": tracked.ip}},
            )
        tracked.registered = True

    def unregister_pod(self, tracked: TrackedPod) -> None:
        if tracked.registered:
            with self._kube_lock:
                self.core().delete_namespaced_pod(tracked.pod.name, POD_NAMESPACE)
            tracked.registered = False

    def start_churn(self) -> None:
        for i, node in enumerate(self.netns_nodes):
            churn = PodChurn(self, node, self.opts.churn_pods, self.opts.seed * 100 + i)
            self.churners.append(churn)
            churn.start()
        self.standin_driver.churn = True

    def stop_churn(self, drain_timeout: float = 60.0) -> None:
        self.standin_driver.churn = False
        for churn in self.churners:
            churn.stop_event.set()
        for churn in self.churners:
            churn.join(30)
        for churn in self.churners:
            churn.drain(drain_timeout)

    def live_pods(self) -> list[TrackedPod]:
        return [*self.long_running, *(p for c in self.churners for p in c.alive)]

    # -- fault injectors ----------------------------------------------------------------

    def workers(self) -> list[ManagedProcess]:
        return [p for p in self.stack.procs if p.name.startswith("worker-")]

    def kill_worker(self) -> None:
        alive = [p for p in self.workers() if p.alive()]
        if not alive:
            return
        proc = self.rng.choice(alive)
        self._kill(proc)
        self.faults.add("worker-kill-9")
        self._restarts.append((time.monotonic() + self.opts.worker_restart_after, proc))

    def restart_redis(self, crash: bool) -> None:
        """Redis goes away and comes back on the same port with its AOF."""
        self.redis_down(crash)
        self.faults.add("redis-kill-9-restart" if crash else "redis-restart")
        time.sleep(self.opts.redis_down_for)
        self.redis_up()

    def redis_down(self, crash: bool = False) -> None:
        """Stop (or kill -9) Redis; the outage is recorded (known crashes need one)."""
        self._down_at = time.time()
        if crash:
            self.stack.redis.kill()
        else:
            self.stack.redis.stop()

    def redis_up(self) -> None:
        self.stack.redis.start()  # returns once it answers
        self.redis_outages.append(Outage(self._down_at, time.time()))
        if self.opts.hostile or self.opts.node_users:
            self.install_issuer_user()  # ACL users are not in the AOF

    # -- the lossy failover ---------------------------------------------------------------

    def failing_over(self) -> bool:
        return self._failover_thread is not None and self._failover_thread.is_alive()

    def start_failover(self) -> None:
        """A lossy failover in the background (it takes seconds; the other faults go on)."""
        if self.failing_over():
            return
        self._failover_thread = threading.Thread(target=self.lose_writes, name="chaos-failover",
                                                 daemon=True)
        self._failover_thread.start()

    def lose_writes(self) -> None:
        """One failover that loses acknowledged writes, then the safety check."""
        group = self.stack.redis
        assert isinstance(group, SentinelGroup)
        try:
            fo = group.lose_writes_in_failover(window=self.opts.failover_window,
                                               cluster_prefix=f"vpcnet:{{{self.opts.cluster}")
        except Exception as e:
            self.failover_errors.append(f"{type(e).__name__}: {e}"[:400])
            return
        # The outage, for the known-crash judge: from the freeze to the old primary's rejoin.
        now_mono, now_unix = time.monotonic(), time.time()
        self.redis_outages.append(Outage(now_unix - (now_mono - fo.frozen_at), now_unix))
        self.faults.add("sentinel-failover-lost-writes")
        self.failovers.append((fo, self.safety_problems()))

    def safety_problems(self) -> list[str]:
        """What must hold at every moment, not only once converged: no IP held by two
        agents (their own records: checkpoints, stand-ins' pools), every long-running pod
        on its IP and reaching the next one."""
        problems = []
        holders: dict[str, list[str]] = {}
        for node in self.netns_nodes:
            for ip in self.checkpoint_assigned(node):
                holders.setdefault(ip, []).append(node.name)
        for name, pool in self.standin_driver.pools().items():
            for ip in pool:
                holders.setdefault(ip, []).append(name)
        twice = {ip: names for ip, names in holders.items() if len(names) > 1}
        if twice:
            problems.append(f"IPs held twice: {twice}")
        by_node = {n.name: n for n in self.netns_nodes}
        for tracked in self.long_running:
            held = {cid: ip for ip, cid in self.checkpoint_assigned(by_node[tracked.node]).items()}
            if held.get(tracked.pod.container_id) != tracked.ip:
                problems.append(f"{tracked.pod.name}: {tracked.ip} -> {held.get(tracked.pod.container_id)}")
        ring = self.long_running
        for a, b in zip(ring, [*ring[1:], *ring[:1]], strict=True):
            if a is not b and not ping(a.pod.netns_name, b.ip, count=1, timeout=3):
                problems.append(f"ping {a.pod.name} -> {b.pod.name} ({b.ip}) failed")
        return problems

    def failover_report(self) -> tuple[list[dict[str, Any]], dict[str, int]]:
        rows = []
        for fo, problems in self.failovers:
            row = {k: v for k, v in asdict(fo).items() if k not in ("frozen_at", "promoted_at")}
            rows.append({**row, "safety_problems": problems})
        totals = {
            "failovers": len(self.failovers),
            "markers_lost": sum(1 for fo, _ in self.failovers
                                if not fo.marker_on_new_primary and not fo.marker_on_old_primary),
            "keys_lost_or_stale": sum(fo.keys_lost_or_stale for fo, _ in self.failovers),
            "unreplicated_bytes": sum(fo.unreplicated_bytes for fo, _ in self.failovers),
        }
        return rows, totals

    # -- the hostile agent ----------------------------------------------------------------

    def redis_servers(self) -> list[Any]:
        """Admin clients of every Redis server (ACL users live per server)."""
        redis = self.stack.redis
        if isinstance(redis, SentinelGroup):
            return [redis.direct(s) for s in redis.servers]
        return [redis.client()]

    def install_issuer_user(self) -> None:
        """The credential issuer's ACL user (docs/deploy.md's ``credentials``) on every
        server: it is what creates the node users. The control plane keeps its login."""
        digest = hashlib.sha256(self.issuer_password.encode()).hexdigest()
        for client in self.redis_servers():
            try:
                client.execute_command("ACL", "SETUSER", ISSUER_USER,
                                       *issuer_rules(self.opts.cluster, digest))
            finally:
                client.close()

    # -- the agents' own logins -----------------------------------------------------------

    def start_credential_issuer(self) -> None:
        """vpcnet's credential issuer (HTTP on loopback), creating node users with the
        issuer's ACL user; each netns agent presents a token of its own and gets its
        node's credential. The TokenReview is a table (token -> node) here: the kube
        emulator has no TokenReview (the real one is tested in test_node_isolation_apiserver)."""
        from vpcnet.credentials.issuer import CredentialIssuer
        from vpcnet.credentials.server import CredentialServer
        from vpcnet.state.acl_users import NodeAclUsers

        users = NodeAclUsers(self.issuer_client(), self.opts.cluster)
        self.credential_server = CredentialServer(
            CredentialIssuer(self._review_token, users, agent_username=AGENT_SERVICE_ACCOUNT))
        self.credential_server.start()
        self.stack.agent_env_overrides = self._agent_login_env

    def _review_token(self, token: str, audiences: Any) -> _AgentIdentity:
        from vpcnet.credentials.errors import CredentialDenied

        node = self._agent_tokens.get(token)
        if node is None:
            raise CredentialDenied("unknown token", status=401)
        self.credentials_issued.add(node)
        return _AgentIdentity(AGENT_SERVICE_ACCOUNT, f"vpcnet-agent-{node}", node)

    def _agent_login_env(self, node: SimNode) -> dict[str, str]:
        token = secrets.token_urlsafe(24)
        self._agent_tokens[token] = node.name
        path = self.opts.workdir / "tokens" / node.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(token + "\n")
        return {"VPCNET_AGENT_REDIS_URL": self.login_url(),
                "VPCNET_AGENT_CREDENTIALS_URL": self.credential_server.url,
                "VPCNET_AGENT_CREDENTIALS_TOKEN_PATH": str(path)}

    def acl_denials(self) -> dict[str, int]:
        """ACL LOG of the current primary: refusals by user (Redis groups repeats)."""
        client = self.stack.redis.client()
        try:
            entries = client.execute_command("ACL", "LOG", "128")
        finally:
            client.close()
        out: Counter[str] = Counter()
        for entry in entries:
            fields = entry if isinstance(entry, dict) else dict(zip(entry[::2], entry[1::2], strict=False))
            fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
            user = fields.get("username", b"")
            out[user.decode() if isinstance(user, bytes) else str(user)] += int(fields.get("count", 1))
        return dict(out)

    def login_url(self) -> str:
        """The stack's Redis URL without the control plane's password: for clients that
        log in as a user of their own (a plain URL cannot carry both; a Sentinel URL's
        password is replaced by the credential provider)."""
        redis = self.stack.redis
        if isinstance(redis, RedisServer):
            return f"redis://127.0.0.1:{redis.port}/0"
        assert isinstance(redis, SentinelGroup)
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in redis.sentinels)
        return f"redis+sentinel://{hosts}/{SENTINEL_SERVICE}/0"

    def issuer_client(self) -> Any:
        from redis.credentials import UsernamePasswordCredentialProvider

        return connect(self.login_url(), socket_timeout=5, socket_connect_timeout=1,
                       credential_provider=UsernamePasswordCredentialProvider(
                           ISSUER_USER, self.issuer_password))

    def victims(self, attacker: str) -> list[Victim]:
        out = []
        for node in self.netns_nodes:
            if node.name != attacker:
                out.append(Victim(node.name, node.instance_id,
                                  tuple(sorted(self.checkpoint_assigned(node)))))
        return out

    def start_hostile(self) -> None:
        attacker = self.netns_nodes[0]
        self.hostile = HostileAgent(
            self.login_url(), self.opts.cluster, attacker.name, attacker.instance_id,
            self.issuer_client, lambda: self.victims(attacker.name),
        )
        self.hostile.start()

    def stop_hostile(self) -> None:
        if self.hostile is not None and self.hostile.is_alive():
            self.hostile.stop_event.set()
            self.hostile.join(30)

    def victims_intact(self) -> list[str]:
        """Problems with what the attacker aimed at: each victim's instance_id as its own."""
        client = self.stack.redis.client()
        try:
            out = []
            for node in self.netns_nodes[1:]:
                iid = client.hget(self.stack.keys.node(node.name).node, "instance_id")
                if (iid or b"").decode() != node.instance_id:
                    out.append(f"{node.name}: instance_id {iid!r} in Redis, not {node.instance_id}")
            return out
        finally:
            client.close()

    def known_crash_report(self) -> tuple[dict[str, int], list[dict[str, Any]], list[str]]:
        """(crashes by worker, each crash with its outage, problems: see known_crashes.judge)."""
        by_worker = Counter(c.process for c in self.known_crashes)
        details = [{**asdict(c), "outage": outage_of(c, self.redis_outages)} for c in self.known_crashes]
        return dict(by_worker), details, judge(self.known_crashes, self.redis_outages)

    def flush_redis(self) -> None:
        client = self.stack.redis.client()
        try:
            client.flushall()
        finally:
            client.close()
        self.faults.add("redis-flushall")

    def restart_agent(self) -> None:
        node = self.rng.choice(self.netns_nodes)
        if node.agent is not None:
            self._kill(node.agent)
            node.agent.start()
            self.faults.add("agent-kill-9")
        if self.standins:
            name = self.rng.choice(sorted(self.standins))
            self.standin_driver.restart(self.standins[name])
            self.faults.add("standin-agent-restart")

    def ec2_faults(self, on: bool) -> None:
        if on:
            self.stack.ec2.set_faults(
                rate_5xx=self.opts.ec2_5xx_rate,
                rules=[{"action": "*", "code": "RequestLimitExceeded",
                        "rate": self.opts.ec2_throttle_rate}],
            )
        else:
            self.stack.ec2.set_faults()

    def _kill(self, proc: ManagedProcess) -> None:
        if proc.proc is not None:
            self._killed.add(proc.proc.pid)
        proc.kill()

    def supervise(self) -> None:
        """Restart what is due (our kills) and anything that died on its own (counted:
        a component that crashes under these faults is a finding)."""
        now = time.monotonic()
        due = [(t, p) for t, p in self._restarts if t <= now]
        self._restarts = [(t, p) for t, p in self._restarts if t > now]
        for _, proc in due:
            if not proc.alive():
                proc.start()
        pending = {id(p) for _, p in self._restarts}
        for proc in [*self.stack.procs]:
            if proc.alive() or id(proc) in pending or proc.proc is None:
                continue
            if proc.proc.pid not in self._killed:
                known = match_known_crash(proc.name, proc.tail(400)) if proc.name.startswith("worker-") else None
                if known is not None:
                    self.known_crashes.append(known)
                else:
                    self.unexpected.add(proc.name)
                    self.exit_notes.append(f"{proc.name} exited {proc.proc.returncode}: "
                                           + " | ".join(proc.tail(5).splitlines())[-600:])
            proc.start()

    def ec2_errors(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for codes in self.stack.ec2.counters().get("errors", {}).values():
            for code, n in codes.items():
                out[code] += n
        return dict(out)

    # -- convergence ------------------------------------------------------------------

    def checkpoint_assigned(self, node: SimNode) -> dict[str, str]:
        """ip -> container id, from the agent's checkpoint file (its truth)."""
        assert node.checkpoint_path is not None
        payload = Checkpoint(node.checkpoint_path).load() or {}
        return {a["ip"]: a["container_id"] for a in payload.get("allocations", [])}

    def convergence_problems(self) -> tuple[list[str], list[dict[str, Any]]]:
        """(problems, audit violations); both empty once the system has converged."""
        from vpcnet.ops.audit import audit
        from vpcnet.ops.collect import collect, to_snapshot

        problems: list[str] = []
        dead = [p.name for p in self.stack.procs if not p.alive()]
        if dead:
            return [f"processes down: {dead}"], []
        world = collect(self.stack.control_settings())
        violations = [v.to_dict() for v in audit(to_snapshot(world))]
        for name in self.node_names():
            st = world.redis_nodes.get(name)
            kube = world.kube_nodes.get(name)
            if st is None or st.phase is not NodePhase.READY:
                problems.append(f"{name}: phase {st.phase if st else None}")
            if kube is None or any(t.key == NOT_READY_TAINT for t in kube.taints):
                problems.append(f"{name}: tainted not-ready")
            report = world.agents.get(name)
            if report is None or not report.ready:
                problems.append(f"{name}: agent not ready")
        loose = [e.eni_id for e in world.enis if e.instance_id is None]
        if loose:
            problems.append(f"unattached ENIs of the cluster: {loose}")
        live = {p.ip: p.pod.container_id for p in self.live_pods()}
        for node in self.netns_nodes:
            truth = self.checkpoint_assigned(node)
            mirror = {str(ip): a.container_id for ip, a in world.assigned.get(node.name, {}).items()}
            if mirror != truth:
                problems.append(f"{node.name}: Redis mirror differs from the checkpoint "
                                f"({len(mirror)} vs {len(truth)} assigned)")
            leaked = {ip for ip, cid in truth.items() if live.get(ip) != cid}
            if leaked:
                problems.append(f"{node.name}: IPs held with no live pod: {sorted(leaked)}")
        for name, agent in self.standins.items():
            mirror = {str(ip): a.container_id for ip, a in world.assigned.get(name, {}).items()}
            if mirror != agent.assigned():
                problems.append(f"{name}: Redis mirror differs from the stand-in's pool")
        return problems, violations

    def wait_converged(self, timeout: float) -> tuple[list[str], list[dict[str, Any]]]:
        """Poll until converged; returns the last problems seen (empty when converged)."""
        deadline = time.monotonic() + timeout
        last: tuple[list[str], list[dict[str, Any]]] = (["not checked"], [])
        while time.monotonic() < deadline:
            self.supervise()
            try:
                last = self.convergence_problems()
            except VpcnetError as e:
                last = ([f"cannot read the world: {e}"], [])
            if not last[0] and not last[1]:
                return last
            time.sleep(2.0)
        return last

    def secrets_in_logs(self) -> list[str]:
        """Log files (every process's, the plugin's included) that contain the Redis
        password, the AWS secret key or Flower's password: there must be none."""
        found = []
        needles = {"redis password": self.redis_password, "AWS secret key": self.aws_secret,
                   "issuer password": self.issuer_password,
                   "Flower password": self.stack.flower_password}
        files = [p for p in sorted(self.stack.log_dir.rglob("*")) if p.is_file()]
        if not any(p.name.startswith("cni-") for p in files) or len(files) < 4:
            raise RuntimeError(f"too few logs to check in {self.stack.log_dir}: {files}")
        for path in files:
            text = path.read_text(errors="replace")
            found += [f"{path.name}: {what}" for what, secret in needles.items() if secret in text]
        return found

    def verify_long_running(self, report: ChaosReport) -> None:
        """Same IP as before, CHECK passes, and every one pings every other."""
        by_node = {n.name: n for n in self.netns_nodes}
        for tracked in self.long_running:
            node = by_node[tracked.node]
            held = {cid: ip for ip, cid in self.checkpoint_assigned(node).items()}
            if held.get(tracked.pod.container_id) != tracked.ip:
                report.ip_changed.append(
                    f"{tracked.pod.name}: {tracked.ip} -> {held.get(tracked.pod.container_id)}"
                )
            try:
                self.runtime(node).check(tracked.pod)
            except CniError as e:
                report.check_failed.append(f"{tracked.pod.name}: {e.error}")
        for a in self.long_running:
            for b in self.long_running:
                if a is not b and not ping(a.pod.netns_name, b.ip, count=1, timeout=3):
                    report.ping_failed.append(f"{a.pod.name} -> {b.pod.name} ({b.ip})")


# -- the chaos run --------------------------------------------------------------------------


def run_chaos(opts: ChaosOptions, progress: Callable[[str], None] | None = None) -> ChaosReport:
    say = progress or (lambda _msg: None)
    report = ChaosReport(nodes=opts.nodes, netns_nodes=opts.netns_nodes,
                         api_nodes=opts.nodes - opts.netns_nodes, redis=opts.redis)
    if opts.netns_nodes < 2 or opts.nodes < opts.netns_nodes:
        raise ValueError("need at least 2 netns nodes and nodes >= netns nodes")
    world = ChaosWorld(opts)
    try:
        with world.running():
            t0 = time.monotonic()
            world.launch_netns_nodes(opts.netns_nodes)
            world.wait_ready([n.name for n in world.netns_nodes], 120)
            for node in world.netns_nodes:
                world.long_running += world.create_pods(node, opts.long_running_pods, "long")
            report.seconds_join_before = round(time.monotonic() - t0, 1)
            say(f"{opts.netns_nodes} netns nodes ready, {len(world.long_running)} "
                f"long-running pods in {report.seconds_join_before}s; faults on")
            errors_before = world.ec2_errors()
            if opts.hostile:
                world.start_hostile()
            _chaos_phase(world, opts, say)
            report.seconds_chaos = round(time.monotonic() - t0 - report.seconds_join_before, 1)
            errors = Counter(world.ec2_errors())
            errors.subtract(errors_before)
            faults = world.faults.snapshot()
            faults["ec2-5xx"] = errors["InternalError"] + errors["ServiceUnavailable"]
            faults["ec2-throttled"] = errors["RequestLimitExceeded"]
            report.faults = faults
            say("faults off; waiting for convergence")
            t1 = time.monotonic()
            problems, violations = world.wait_converged(opts.converge_timeout)
            report.seconds_converge = round(time.monotonic() - t1, 1)
            report.problems, report.violations = problems, violations
            report.nodes_ready = len(world.nodes_ready(world.node_names()))
            world.verify_long_running(report)
            if world.hostile is not None:
                world.stop_hostile()
                report.hostile = world.hostile.snapshot()
                report.violations += [{"invariant": 8, "rule": "node-isolation", "detail": s}
                                      for s in report.hostile["successes"]]
                report.problems += [f"hostile agent: {p}" for p in world.victims_intact()]
                if report.hostile["refused"] == 0:
                    report.problems.append("hostile agent: no attempt was ever refused (never logged in?)")
            report.failovers, report.lost_writes = world.failover_report()
            if opts.node_users:
                report.agent_credentials = world.credentials_issued.snapshot()
                report.problems += [f"{n.name}: its agent never fetched a node credential"
                                    for n in world.netns_nodes if n.name not in report.agent_credentials]
            if opts.hostile or opts.node_users:
                report.acl_denials = world.acl_denials()
            report.problems += [f"after failover {i}: {p}" for i, row in enumerate(report.failovers)
                                for p in row["safety_problems"]]
            report.problems += [f"failover failed: {e}" for e in world.failover_errors]
            if opts.redis == "sentinel" and not report.failovers:
                report.problems.append("no lossy failover happened")
            report.problems += [f"secret in a log: {f}" for f in world.secrets_in_logs()]
            report.pods = {
                "long_running": len(world.long_running),
                "alive_at_end": len(world.live_pods()),
                **world.tally.snapshot(),
            }
            report.add_failures = world.add_failures.snapshot()
            report.unexpected_exits = world.unexpected.snapshot()
            report.worker_broker_loss_crashes, report.known_crashes, crash_problems = world.known_crash_report()
            report.redis_outages = len(world.redis_outages)
            report.problems += world.exit_notes + crash_problems
    except Exception as e:
        report.error = f"{type(e).__name__}: {e}"
        if world.hostile is not None:
            report.hostile = world.hostile.snapshot()
        report.failovers, report.lost_writes = world.failover_report()
        report.unexpected_exits = world.unexpected.snapshot()
        report.faults = report.faults or world.faults.snapshot()
    return report


def _chaos_phase(world: ChaosWorld, opts: ChaosOptions, say: Callable[[str], None]) -> None:
    """Faults on; API-only nodes join; churn; faults off; churn drained."""
    world.ec2_faults(True)
    world.start_churn()
    world.launch_api_nodes(opts.nodes - opts.netns_nodes)
    start = time.monotonic()
    due = {
        "worker": start + opts.worker_kill_every,
        "redis": start + (opts.failover_every / 2 if opts.redis == "sentinel"
                          else opts.redis_restart_every),
        "agent": start + opts.agent_restart_every / 2,
    }
    crash = False
    try:
        while (now := time.monotonic()) < start + opts.seconds:
            if now >= due["worker"]:
                world.kill_worker()
                due["worker"] = now + opts.worker_kill_every
            if now >= due["redis"] and opts.redis == "sentinel":
                if not world.failing_over():  # the next one once the last has rejoined
                    world.start_failover()
                    due["redis"] = now + opts.failover_every
            elif now >= due["redis"]:
                world.restart_redis(crash)
                crash = not crash
                due["redis"] = time.monotonic() + opts.redis_restart_every
            if now >= due["agent"]:
                world.restart_agent()
                due["agent"] = now + opts.agent_restart_every
            world.supervise()
            time.sleep(0.2)
    finally:
        # The last failover completes (and is checked) before the faults stop.
        deadline = time.monotonic() + 120
        while world.failing_over() and time.monotonic() < deadline:
            world.supervise()
            time.sleep(0.2)
        world.ec2_faults(False)
        # What a Deployment restarts comes back even if its restart was not due yet.
        world._restarts = [(0.0, p) for _, p in world._restarts]
        world.supervise()
    ready = len(world.nodes_ready(world.node_names()))
    say(f"chaos over after {opts.seconds:.0f}s: {ready}/{opts.nodes} nodes ready, "
        f"faults {world.faults.snapshot()}")
    world.stop_churn()


__all__ = ["ChaosOptions", "ChaosReport", "ChaosWorld", "TrackedPod", "run_chaos"]
