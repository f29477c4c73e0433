"""The embedded stack: every vpcnet process and both emulators, wired on one machine.

Used by ``vpcnet demo``, the e2e tests and ``vpcnet bench storm``. The control plane runs
exactly as in a cluster (watcher, Celery workers, beat, Flower as child processes, talking
to Redis, to EC2 through boto3 and to Kubernetes through the ``kubernetes`` client); AWS is
emulated, Kubernetes is either the emulator (``kube="emulator"``, the fast default) or a
real etcd + kube-apiserver (``kube="apiserver"``, vpcnet_sim.embedded.kubeapi) on which every
process authenticates as its own ServiceAccount, bound to the RBAC of manifests/. Nodes are either network namespaces with a real
agent (``with_netns``) or API-only (for join storms at a scale no netns set-up allows).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import redis

from vpcnet.domain import IpFamily, NodePhase
from vpcnet.settings import Settings
from vpcnet.state.keys import ClusterKeys
from vpcnet.state.records import PHASE_FIELD, parse_phase
from vpcnet.tasknames import EC2_WORKERS, SCAN_WORKERS
from vpcnet.wellknown import NOT_READY_TAINT
from vpcnet_sim.embedded.procs import ManagedProcess, RedisServer, free_port, wait_for

VPC_CIDR = "10.0.0.0/16"
SUBNETS = ("10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20")
AZS = ("us-east-1a", "us-east-1b", "us-east-1c")
KUBE_SERVERS = ("emulator", "apiserver")
IP_FAMILIES = tuple(f.value for f in IpFamily)
# What the processes log once they serve: Celery's "<hostname> ready." once the worker's
# consumer started; the watcher's structured event when it takes the Lease.
WORKER_READY_MARKER = "{hostname} ready."
WATCHER_LEADS_MARKER = '"event": "leader.acquired"'


class StackRedis(Protocol):
    """What the stack needs of its Redis: a ``RedisServer`` or a ``SentinelGroup``
    (vpcnet_sim.embedded.sentinel), whose URL every component is given."""

    @property
    def url(self) -> str: ...

    def client(self) -> redis.Redis[bytes]: ...

    def start(self, timeout: float = ...) -> None: ...

    def stop(self) -> None: ...

    def kill(self) -> None: ...


@dataclass(frozen=True)
class StackOptions:
    workdir: Path
    cluster: str = "demo"
    mode: str = "full"
    ec2_latency: str = "fast"  # "fast" | "aws" (see vpcnet_sim.ec2 presets)
    ec2_throttle: bool = True
    worker_processes: int = 1
    worker_concurrency: int = 16
    # >0: the production layout (``vpcnet.tasknames.WORKER_POOLS``): the workers consume
    # only the EC2 queue and one more worker, with this many threads, the scan queue
    # (node_ready never waits behind provisioning). 0: the workers consume every queue.
    scan_worker_concurrency: int = 0
    beat: bool = True
    flower: bool = True
    watcher_replicas: int = 1
    with_netns: bool = True
    netns_prefix: str = "vpcdemo-"
    ip_cooldown_seconds: float = 30.0
    eni_gc_grace_seconds: float = 60.0
    extra_env: dict[str, str] = field(default_factory=dict)
    # Secondary VPC CIDRs (/16 each, AWS's largest), one subnet spanning each: a
    # 1,000-node full-mode storm needs ~60k addresses, more than one /16 holds.
    extra_vpc_cidrs: tuple[str, ...] = ()
    # Run the EC2 emulator as its own process (a core of its own for big storms).
    ec2_process: bool = False
    # "emulator" (vpcnet_sim.kube, in this process) or "apiserver" (the real one)
    kube: str = "emulator"
    # >1: the EC2 emulator's clock runs this many times faster (latencies, delays and
    # token buckets); the benchmark scales vpcnet's rate limiter to match.
    ec2_time_scale: float = 1.0
    # the cluster's IP family (VPCNET_IP_FAMILY): ipv4 | ipv6 | dual
    ip_family: str = "ipv4"

    def __post_init__(self) -> None:
        if self.kube not in KUBE_SERVERS:
            raise ValueError(f"kube must be one of {', '.join(KUBE_SERVERS)}, not {self.kube!r}")
        if self.ip_family not in IP_FAMILIES:
            raise ValueError(
                f"ip_family must be one of {', '.join(IP_FAMILIES)}, not {self.ip_family!r}"
            )

    @property
    def family(self) -> IpFamily:
        return IpFamily(self.ip_family)


@dataclass
class SimNode:
    name: str
    instance_id: str
    instance_type: str
    az: str
    subnet_id: str
    netns: str | None = None
    agent: ManagedProcess | None = None
    socket_path: Path | None = None
    conf_dir: Path | None = None
    bin_dir: Path | None = None
    checkpoint_path: Path | None = None
    runtime_dir: Path | None = None
    status_file: Path | None = None

    def primary_ip(self, ec2: Any) -> str:
        return str(ec2.instance_view(self.instance_id)["private_ip"])


def _bin(name: str) -> str:
    """A console script of this installation (the venv's), never a PATH lookup."""
    candidate = Path(sys.executable).with_name(name)
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed; run scripts/setup.sh")
    return found


class EmbeddedStack:
    def __init__(self, opts: StackOptions) -> None:
        self.opts = opts
        self.workdir = opts.workdir
        self.log_dir = opts.workdir / "logs"
        self.redis: StackRedis = RedisServer(opts.workdir / "redis")
        self.procs: list[ManagedProcess] = []
        self._worker_hostnames: dict[str, str] = {}  # worker process name -> Celery hostname
        self.nodes: dict[str, SimNode] = {}
        self.ec2: Any = None  # vpcnet_sim.ec2.Ec2Emulator
        self.kube: Any = None  # vpcnet_sim.kube.KubeEmulator | vpcnet_sim.embedded.kubeapi.KubeApiServer
        # apiserver: component -> its kubeconfig (its own ServiceAccount token); the
        # ConfigMap the manifests give every component
        self.component_kubeconfigs: dict[str, Path] = {}
        self.kube_config: dict[str, str] = {}
        self.vpc: Any = None  # vpcnet_sim.vpc.SimVpc
        self.world: Any = None
        self.kubeconfig = opts.workdir / "kubeconfig"
        self.flower_port = free_port()
        self.flower_password = secrets.token_urlsafe(12)
        self.keys = ClusterKeys(opts.cluster)
        # Replaces entries of each agent's environment, e.g. its Redis login: a
        # credential issuer's URL and a token instead of the control plane's password.
        self.agent_env_overrides: Callable[[SimNode], dict[str, str]] | None = None

    # -- environment handed to every control-plane process -----------------------------

    def control_env(self, component: str = "operator") -> dict[str, str]:
        """The environment of ``component`` (watcher, workers, beat, flower; "operator"
        for the CLI's audit, status and inspect): on the real apiserver each has its own
        kubeconfig, the manifests' namespaces for its Lease and Events."""
        env = dict(os.environ)
        env.update(
            {
                "VPCNET_CLUSTER_NAME": self.opts.cluster,
                "VPCNET_REDIS_URL": self.redis.url,
                "VPCNET_EC2_ENDPOINT_URL": self.ec2.endpoint_url,
                "VPCNET_KUBECONFIG": str(self.kubeconfig),
                "VPCNET_MODE": self.opts.mode,
                "VPCNET_IP_FAMILY": self.opts.ip_family,
                "VPCNET_AWS_REGION": "us-east-1",
                "VPCNET_IP_COOLDOWN_SECONDS": str(self.opts.ip_cooldown_seconds),
                "VPCNET_ENI_GC_GRACE_SECONDS": str(self.opts.eni_gc_grace_seconds),
                "AWS_ACCESS_KEY_ID": "embedded",
                "AWS_SECRET_ACCESS_KEY": "embedded",
                "AWS_DEFAULT_REGION": "us-east-1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.component_kubeconfigs:
            env["VPCNET_KUBECONFIG"] = str(self.component_kubeconfigs[component])
            for key in ("VPCNET_LEASE_NAMESPACE", "VPCNET_LEASE_NAME", "VPCNET_EVENT_NAMESPACE"):
                env[key] = self.kube_config[key]
        env.update(self.opts.extra_env)
        return env

    def control_settings(self) -> Settings:
        """The same settings the control-plane processes read from their environment."""
        return Settings.from_env(self.control_env())

    def agent_env(self, node: SimNode) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            {
                "VPCNET_AGENT_NODE_NAME": node.name,
                "VPCNET_AGENT_CLUSTER_NAME": self.opts.cluster,
                "VPCNET_AGENT_REDIS_URL": self.redis.url,
                "VPCNET_AGENT_IMDS_URL": f"{self.ec2.endpoint_url}/_imds/{node.instance_id}",
                "VPCNET_AGENT_SOCKET_PATH": str(node.socket_path),
                "VPCNET_AGENT_CHECKPOINT_PATH": str(node.checkpoint_path),
                "VPCNET_AGENT_CNI_CONF_DIR": str(node.conf_dir),
                "VPCNET_AGENT_CNI_BIN_DIR": str(node.bin_dir),
                "VPCNET_AGENT_CNI_RUNTIME_DIR": str(node.runtime_dir),
                "VPCNET_AGENT_STATUS_FILE": str(node.status_file),
                "VPCNET_AGENT_HOST_NETNS": node.netns or "",
                "VPCNET_AGENT_VPC_CIDRS": VPC_CIDR,
                "VPCNET_AGENT_IP_COOLDOWN_SECONDS": str(self.opts.ip_cooldown_seconds),
                "VPCNET_AGENT_LOG_FILE": str(self.log_dir / f"cni-{node.name}.log"),
                "VPCNET_AGENT_RESYNC_SECONDS": "5",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.agent_env_overrides is not None:
            env.update(self.agent_env_overrides(node))
        return env

    # -- start-up ------------------------------------------------------------------------

    def start_services(self) -> None:
        """Redis and both emulators (in this process, on loopback ports)."""
        from vpcnet_sim.ec2 import Ec2Emulator, Ec2SimConfig
        from vpcnet_sim.kube import KubeEmulator

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis.start()
        if self.opts.ec2_process:
            from vpcnet_sim.embedded.ec2proc import Ec2Process

            self.ec2 = Ec2Process(self.opts.ec2_latency, self.opts.ec2_throttle, self.log_dir,
                                  self.opts.ec2_time_scale)
        else:
            self.ec2 = Ec2Emulator(
                Ec2SimConfig.preset_named(self.opts.ec2_latency, throttle=self.opts.ec2_throttle)
                .time_scaled(self.opts.ec2_time_scale),
                host="127.0.0.1",
                port=0,
            )
        self.ec2.start()
        self.world = self.ec2.bootstrap_vpc(cidr=VPC_CIDR, subnets=SUBNETS, azs=AZS)
        self.subnets: list[tuple[str, str]] = list(zip(self.world.subnet_ids, AZS, strict=True))
        if self.opts.extra_vpc_cidrs:
            client = self.ec2.client()
            for i, cidr in enumerate(self.opts.extra_vpc_cidrs):
                client.associate_vpc_cidr_block(VpcId=self.world.vpc_id, CidrBlock=cidr)
                az = AZS[i % len(AZS)]
                sub = client.create_subnet(VpcId=self.world.vpc_id, CidrBlock=cidr, AvailabilityZone=az)
                self.subnets.append((sub["Subnet"]["SubnetId"], az))
            self.ec2.reset_counters()  # set-up is not the system's work
        if self.opts.kube == "apiserver":
            self.start_apiserver()
        else:
            # a watch window deep enough for join storms (the watcher relists on 410 anyway)
            self.kube = KubeEmulator(host="127.0.0.1", port=0, history=50_000)
            self.kube.start()
            self.kube.write_kubeconfig(self.kubeconfig)

    def start_apiserver(self) -> None:
        """etcd + kube-apiserver, the manifests' RBAC, a kubeconfig per component."""
        from vpcnet_sim.embedded.kubeaccess import deploy_access
        from vpcnet_sim.embedded.kubeapi import KubeApiServer

        self.kube = KubeApiServer(self.workdir / "controlplane")
        endpoint = self.kube.start()
        deployed = deploy_access(endpoint)
        self.kube_config = deployed.config
        kube_dir = self.workdir / "kube"
        self.component_kubeconfigs = {
            component: endpoint.write_kubeconfig(kube_dir / f"{component}.kubeconfig", token)
            for component, token in deployed.tokens.items()
        }
        self.kubeconfig = self.component_kubeconfigs["operator"]

    def kube_server(self) -> dict[str, str]:
        """Which Kubernetes this stack runs on, and its version as its /version says."""
        from kubernetes import client as k8s

        with self.kube.api_client() as api:
            info = k8s.VersionApi(api).get_code()
        server = "kube-apiserver" if self.opts.kube == "apiserver" else "emulator"
        return {"server": server, "version": str(info.git_version)}

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.log_dir, env=env, cwd=self.workdir).start()
        self.procs.append(proc)
        return proc

    def start_control_plane(self) -> None:
        celery = _bin("celery")
        split = self.opts.scan_worker_concurrency > 0
        workers = [
            (f"worker-{i}", self._worker_hostname(i),
             [*(["-Q", ",".join(EC2_WORKERS.queues)] if split else []),
              "--concurrency", str(self.opts.worker_concurrency)])
            for i in range(self.opts.worker_processes)
        ]
        if split:
            workers.append((
                "worker-scan", f"scan0@{self.opts.cluster}",
                ["-Q", ",".join(SCAN_WORKERS.queues),
                 "--concurrency", str(self.opts.scan_worker_concurrency)],
            ))
        for name, hostname, pool_args in workers:
            self._worker_hostnames[name] = hostname
            self._spawn(
                name,
                [
                    celery, "-A", "workers", "worker",
                    "--hostname", hostname,
                    *pool_args,
                    "--loglevel", "INFO",
                    "--events",
                ],
                self.control_env("workers"),
            )
        if self.opts.beat:
            self._spawn(
                "beat",
                [celery, "-A", "workers", "beat", "--loglevel", "INFO",
                 "--schedule", str(self.workdir / "beat-schedule")],
                self.control_env("beat"),
            )
        if self.opts.flower:
            self._spawn(
                "flower",
                [
                    celery, "-A", "workers", "flower",
                    "--address=127.0.0.1", f"--port={self.flower_port}",
                    f"--basic-auth=admin:{self.flower_password}",
                ],
                self.control_env("flower"),
            )
        for i in range(self.opts.watcher_replicas):
            self._spawn(f"watcher-{i}", [_bin("vpcnet"), "watcher"], self.control_env("watcher"))

    def _worker_hostname(self, index: int) -> str:
        return f"worker{index}@{self.opts.cluster}"

    def start_vpc(self) -> None:
        from vpcnet_sim.vpc import SimVpc

        self.vpc = SimVpc(
            prefix=self.opts.netns_prefix,
            ec2_admin_url=self.ec2.endpoint_url,
            cidr=VPC_CIDR,
            subnets=SUBNETS,
            subnets_ipv6=self.subnets_ipv6(),
        )
        self.vpc.setup()
        self.vpc.start_fabric(0.2)

    def subnets_ipv6(self) -> list[str | None]:
        """Each of ``SUBNETS``' IPv6 /64 as DescribeSubnets gives it (None: IPv4 only)."""
        found: dict[str, str] = {}
        resp = self.ec2.client().describe_subnets(SubnetIds=list(self.world.subnet_ids))
        for sub in resp["Subnets"]:
            for assoc in sub.get("Ipv6CidrBlockAssociationSet") or ():
                if (assoc.get("Ipv6CidrBlockState") or {}).get("State") == "associated":
                    found[str(sub["CidrBlock"])] = str(assoc["Ipv6CidrBlock"])
        return [found.get(cidr) for cidr in SUBNETS]

    def launch_node(self, name: str, instance_type: str, subnet_index: int = 0) -> SimNode:
        """Run an EC2 instance for the node and, with netns, its namespace and agent."""
        subnet_id, az = self.subnets[subnet_index % len(self.subnets)]
        iid = self.ec2.run_instance(
            instance_type=instance_type,
            subnet_id=subnet_id,
            name=name,
            security_group_ids=[self.world.security_group_id],
        )
        node = SimNode(name, iid, instance_type, az, subnet_id)
        self.nodes[name] = node
        if self.opts.with_netns:
            node.netns = self.vpc.add_node(iid, name)
            base = self.workdir / "nodes" / name
            node.socket_path = base / "agent.sock"
            node.conf_dir = base / "net.d"
            node.bin_dir = base / "bin"
            node.checkpoint_path = base / "checkpoint.json"
            node.runtime_dir = base / "runtime"
            node.status_file = base / "status.json"
            for d in (node.conf_dir, node.bin_dir):
                d.mkdir(parents=True, exist_ok=True)
            node.agent = self._spawn(f"agent-{name}", [_bin("vpcnet"), "agent"], self.agent_env(node))
        return node

    def register_node(self, node: SimNode) -> None:
        """What kubelet does when it joins: the Node object with its AWS providerID,
        registered with the not-ready taint (``--register-with-taints``, as docs/deploy.md
        asks) so that no pod is scheduled in the moment before the watcher sees it."""
        self.kube.add_node(
            node.name,
            provider_id=f"aws:///{node.az}/{node.instance_id}",
            instance_type=node.instance_type,
            taints=[{"key": NOT_READY_TAINT, "effect": "NoSchedule"}],
        )

    # -- observation ---------------------------------------------------------------------

    def node_phase(self, name: str) -> str:
        client = self.redis.client()
        try:
            phase = parse_phase(client.hget(self.keys.node(name).node, PHASE_FIELD))
        finally:
            client.close()
        return (phase or NodePhase.PENDING).value

    def node_tainted(self, name: str) -> bool:
        from kubernetes import client as k8s

        api = k8s.CoreV1Api(self.kube.api_client())
        node = api.read_node(name)
        taints = (node.spec.taints if node.spec else None) or []
        return any(t.key == NOT_READY_TAINT for t in taints)

    def wait_processes_up(self, timeout: float = 60.0) -> None:
        for proc in self.procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        if self.opts.flower:
            import urllib.request

            def flower_up() -> bool:
                try:
                    with urllib.request.urlopen(f"{self.flower_url}/healthcheck", timeout=1):
                        return True
                except OSError:
                    return False

            wait_for(flower_up, timeout, "Flower")

    def wait_control_plane_ready(self, timeout: float = 60.0) -> None:
        """Until every worker consumes and a watcher holds the Lease: a process that is
        alive may still be importing, or (a Celery worker) waiting a second for
        neighbours to sync with, and a benchmark must not count that as vpcnet's time."""
        workers = [
            (p, WORKER_READY_MARKER.format(hostname=self._worker_hostnames[p.name]))
            for p in self.procs if p.name in self._worker_hostnames
        ]
        watchers = [p for p in self.procs if p.name.startswith("watcher-")]

        def logged(proc: ManagedProcess, marker: str) -> bool:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            try:
                return marker in proc.log_path.read_text(errors="replace")
            except FileNotFoundError:
                return False

        def ready() -> bool:
            return (all(logged(w, marker) for w, marker in workers)
                    and (not watchers or any(logged(w, WATCHER_LEADS_MARKER) for w in watchers)))

        wait_for(ready, timeout, "the workers to consume and a watcher to lead", interval=0.02)

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}"

    def dead_processes(self) -> list[ManagedProcess]:
        return [p for p in self.procs if not p.alive()]

    # -- tear-down -----------------------------------------------------------------------

    def stop(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop()
        if self.vpc is not None:
            with contextlib.suppress(Exception):
                self.vpc.teardown()
        for svc in (self.kube, self.ec2):
            if svc is not None:
                with contextlib.suppress(Exception):
                    svc.stop()
        self.redis.stop()

    @contextlib.contextmanager
    def running(self) -> Iterator[EmbeddedStack]:
        try:
            self.start_services()
            if self.opts.with_netns:
                self.start_vpc()
            self.start_control_plane()
            yield self
        finally:
            self.stop()
