"""``vpcnet demo``: the embedded default end to end, for a newcomer.

Three nodes of different instance types join a cluster (the Kubernetes emulator, or with
``--kube apiserver`` a real etcd + kube-apiserver, built first if the cache lacks it), get their ENIs and IPs
through the real control plane, their real agents program the node namespaces, twelve
pods are created by exec'ing the CNI plugin as a runtime does, traffic proves the
wiring, and the audit checks the invariants. Exits 0 only when all of it worked.

``--ip-family ipv6|dual`` runs the cluster with that family: pods get an IPv6 address from
their node's /80 (dual: one of each), the connectivity matrix is drawn per family (IPv4
leaves the VPC SNAT'd to the node's address, IPv6 with the pod's own), and one pod per
spec version goes through ADD -> CHECK -> DEL -> DEL as a runtime of that version runs it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vpcnet_sim.embedded.lifecycle import lifecycle_of
from vpcnet_sim.embedded.procs import wait_for
from vpcnet_sim.embedded.stack import EmbeddedStack, SimNode, StackOptions
from vpcnet_sim.netns import ping, source_seen_by
from vpcnet_sim.runtime import Pod, PodRuntime

DEMO_NODES = (
    ("node-a", "t3.medium", 0),
    ("node-b", "m5.large", 1),
    ("node-c", "c5.xlarge", 2),
)
PODS_PER_NODE = 4
CNI_REFERENCE_DIR = Path("/usr/lib/cni")


@dataclass
class DemoReport:
    ok: bool = False
    seconds: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    ip_family: str = "ipv4"
    # today's shape (src node -> dst node | "outside" -> "ok/total ..."), of the IPv4
    # matrix (the IPv6 one on an ipv6 cluster): readers of earlier demos keep working
    connectivity: dict[str, Any] = field(default_factory=dict)
    # family -> that family's matrix, in the same shape
    connectivity_by_family: dict[str, Any] = field(default_factory=dict)
    # spec version -> {"ok", "ips", "error"}: ADD -> CHECK -> DEL -> DEL of one pod
    lifecycle: dict[str, Any] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    flower_url: str | None = None
    kube: dict[str, str] = field(default_factory=dict)  # {"server": ..., "version": ...}

    def step(self, name: str, started: float, **extra: Any) -> None:
        self.steps.append({"step": name, "seconds": round(time.monotonic() - started, 2), **extra})


class Demo:
    def __init__(
        self,
        console: Console,
        keep: bool,
        as_json: bool,
        workdir: Path | None,
        kube: str = "emulator",
        ip_family: str = "ipv4",
    ) -> None:
        self.console = console
        self.keep = keep
        self.as_json = as_json
        self.report = DemoReport(ip_family=ip_family)
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="vpcnet-demo-"))
        self.stack = EmbeddedStack(
            # a per-run namespace prefix, so two demos (or a demo and the tests) never collide
            StackOptions(
                workdir=self.workdir,
                cluster="demo",
                netns_prefix=f"vpcd{secrets.token_hex(2)}-",
                kube=kube,
                ip_family=ip_family,
            )
        )
        self.family = self.stack.opts.family
        self.pods: list[tuple[SimNode, Pod]] = []

    def say(self, msg: str) -> None:
        if not self.as_json:
            self.console.print(msg)

    # -- the steps --------------------------------------------------------------------

    def preflight(self) -> None:
        from vpcnet_sim.embedded.preflight import check_host

        problems = check_host(need_netns=True)
        if problems:
            raise RuntimeError("set-up checks failed:\n  - " + "\n  - ".join(problems))

    def build_controlplane(self) -> None:
        """With the real apiserver: build etcd and kube-apiserver first if not cached."""
        if self.stack.opts.kube != "apiserver":
            return
        from vpcnet_sim.embedded.kubebuild import ensure_controlplane

        t = time.monotonic()
        # progress goes to the console (stderr under --json): a cold build takes minutes
        where = ensure_controlplane(lambda line: self.console.print(line, markup=False))
        self.report.step("controlplane", t, binaries=str(where))

    def start(self) -> None:
        t = time.monotonic()
        self.stack.start_services()
        self.stack.start_vpc()
        self.stack.start_control_plane()
        self.stack.wait_processes_up()
        self.report.kube = self.stack.kube_server()
        self.report.step("start", t, processes=[p.name for p in self.stack.procs])
        kube = self.report.kube
        self.say(
            f"[green]✓[/] redis {self.stack.redis.url}, EC2 emulator {self.stack.ec2.endpoint_url}, "
            f"Kubernetes {kube['server']} {kube['version']} {self.stack.kube.url}, "
            f"Flower {self.stack.flower_url}"
        )

    def join_nodes(self) -> None:
        t = time.monotonic()
        nodes = [self.stack.launch_node(n, it, s) for n, it, s in DEMO_NODES]
        for node in nodes:
            self.stack.register_node(node)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[phase]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=self.as_json,
        )
        phases = ["pending", "provisioning", "provisioned", "ready"]
        with progress:
            tasks = {
                n.name: progress.add_task(f"{n.name} ({n.instance_type})", total=4, phase="pending")
                for n in nodes
            }

            def all_ready() -> bool:
                done = True
                for n in nodes:
                    phase = self.stack.node_phase(n.name)
                    if phase == "error":
                        raise RuntimeError(f"{n.name} failed to provision: see `vpcnet inspect`")
                    untainted = phase == "ready" and not self.stack.node_tainted(n.name)
                    step = phases.index(phase) + 1 if phase in phases else 1
                    progress.update(tasks[n.name], completed=4 if untainted else step, phase=phase)
                    done = done and untainted
                dead = self.stack.dead_processes()
                if dead:
                    raise RuntimeError(f"{dead[0].name} exited:\n{dead[0].tail()}")
                return done

            wait_for(all_ready, 90, "all nodes ready", interval=0.25)
        self.report.step("join", t, nodes=len(nodes))

    def run_pods(self) -> None:
        t = time.monotonic()
        from kubernetes import client as k8s

        api = k8s.CoreV1Api(self.stack.kube.api_client())
        for node in self.stack.nodes.values():
            assert node.conf_dir is not None and node.bin_dir is not None
            conflist = sorted(node.conf_dir.glob("*.conflist"))[0]
            runtime = PodRuntime(
                conflist,
                [node.bin_dir, CNI_REFERENCE_DIR],
                netns_prefix=f"{self.stack.opts.netns_prefix}p-",
            )
            for i in range(PODS_PER_NODE):
                name = f"web-{node.name[-1]}{i}"
                pod = runtime.new_pod("default", name)
                try:
                    runtime.add(pod)
                except Exception:
                    runtime.remove_netns(pod)
                    raise
                self.pods.append((node, pod))
                body = k8s.V1Pod(
                    metadata=k8s.V1ObjectMeta(name=name, namespace="default"),
                    spec=k8s.V1PodSpec(
                        node_name=node.name,
                        containers=[k8s.V1Container(name="app", image="busybox")],
                    ),
                )
                api.create_namespaced_pod("default", body)
                status = {"phase": "Running", "podIP": pod.ip, "podIPs": [{"ip": a} for a in pod.ips]}
                api.patch_namespaced_pod_status(name, "default", {"status": status})
        self.report.step("pods", t, pods=len(self.pods))

    def connectivity(self) -> bool:
        t = time.monotonic()
        families = [f for f in (4, 6) if (self.family.wants_ipv4 if f == 4 else self.family.wants_ipv6)]
        all_ok = True
        for version in families:
            matrix, ok = self.family_matrix(version)
            self.report.connectivity_by_family[f"ipv{version}"] = matrix
            all_ok = all_ok and ok
            self.print_matrix(version, matrix)
        self.report.connectivity = self.report.connectivity_by_family[f"ipv{families[0]}"]
        self.report.step("connectivity", t, ok=all_ok)
        return all_ok

    def family_matrix(self, version: int) -> tuple[dict[str, dict[str, str]], bool]:
        """Pod -> pod pings across every pair of nodes and pod -> outside, in one family:
        the outside sees the node's primary IPv4 (SNAT) or the pod's own IPv6 (no NAT)."""
        vpc = self.stack.vpc
        names = list(self.stack.nodes)
        outside = vpc.outside_host_ip if version == 4 else vpc.outside_host_ip6

        def address(pod: Pod) -> str:
            return pod.ip4 if version == 4 else pod.ip6

        matrix: dict[str, dict[str, str]] = {}
        all_ok = True
        for src in names:
            matrix[src] = {}
            src_pods = [p for n, p in self.pods if n.name == src]
            for dst in names:
                dst_pods = [p for n, p in self.pods if n.name == dst]
                pairs = [(a, b) for a in src_pods for b in dst_pods if a is not b]
                ok = sum(bool(address(b)) and ping(a.netns_name, address(b), count=1, timeout=3)
                         for a, b in pairs)
                matrix[src][dst] = f"{ok}/{len(pairs)}"
                all_ok = all_ok and ok == len(pairs)
            seen = [self.source_seen(p, outside) for p in src_pods]
            if version == 4:
                primary = self.stack.nodes[src].primary_ip(self.stack.ec2)
                good = sum(1 for s in seen if s == primary)
                matrix[src]["outside"] = f"{good}/{len(src_pods)} via {primary}"
            else:
                good = sum(1 for p, s in zip(src_pods, seen, strict=True) if s and s == p.ip6)
                matrix[src]["outside"] = f"{good}/{len(src_pods)} from the pod's own address"
            all_ok = all_ok and good == len(src_pods)
        return matrix, all_ok

    def source_seen(self, pod: Pod, outside: str) -> str:
        """The source the outside echo service saw from ``pod`` ("" when unreachable)."""
        try:
            return source_seen_by(pod.netns_name, outside, self.stack.vpc.outside_echo_port)
        except OSError:
            return ""

    def print_matrix(self, version: int, matrix: dict[str, dict[str, str]]) -> None:
        if self.as_json:
            return
        names = list(matrix)
        outside = "outside (SNAT)" if version == 4 else "outside (no NAT)"
        table = Table(title=f"IPv{version} connectivity: pod → pod pings (ok/total) and pod → {outside}")
        table.add_column("from \\ to")
        for dst in [*names, "outside"]:
            table.add_column(dst)
        for src in names:
            table.add_row(src, *(matrix[src][d] for d in [*names, "outside"]))
        self.console.print(table)

    def lifecycle(self) -> bool:
        """ADD -> CHECK -> DEL -> DEL of one pod on the first node for every spec version
        the installed conflist offers, each run as a runtime of that version runs it."""
        t = time.monotonic()
        node = next(iter(self.stack.nodes.values()))
        assert node.conf_dir is not None and node.bin_dir is not None
        conflist = sorted(node.conf_dir.glob("*.conflist"))[0]
        versions = list(PodRuntime(conflist, [], "").load_conflist().get("cniVersions") or [])
        all_ok = bool(versions)
        for version in versions:
            runtime = PodRuntime(
                conflist, [node.bin_dir, CNI_REFERENCE_DIR],
                netns_prefix=f"{self.stack.opts.netns_prefix}l-", cni_version=version,
            )
            outcome = lifecycle_of(runtime, self.family, version)
            self.report.lifecycle[version] = outcome
            all_ok = all_ok and bool(outcome["ok"])
            mark = "[green]✓[/]" if outcome["ok"] else "[red]✗[/]"
            self.say(f"{mark} CNI {version}: ADD → CHECK → DEL → DEL {' '.join(outcome['ips'])} "
                     f"{outcome['error'] or ''}")
        self.report.step("lifecycle", t, ok=all_ok, versions=versions)
        return all_ok

    def show_state(self) -> None:
        from vpcnet.ops.collect import collect_nodes_view

        views = collect_nodes_view(self.stack.control_settings())
        ipv6_prefixes = {  # ENI id -> its /80s, as EC2 holds them
            str(eni["eni_id"]): list(eni.get("ipv6_prefixes") or [])
            for inst in self.stack.ec2.instances_view()
            for eni in inst.get("enis", [])
        }
        table = Table(title="Nodes, ENIs, IPs and pods")
        for col in ("node", "type", "ENI", "dev", "subnet", "IPs used/pool", "IPv6 /80", "pods"):
            table.add_column(col)
        for v in views:
            self.report.nodes.append(v)
            for eni in v["enis"]:
                pool = len(eni["ips"]) + 16 * len(eni["prefixes"])
                table.add_row(
                    v["name"], v["instance_type"], eni["eni_id"], str(eni["device_index"]),
                    eni["subnet_cidr"], f"{eni['assigned']}/{pool}",
                    ", ".join(ipv6_prefixes.get(eni["eni_id"], [])) or "-",
                    ", ".join(p.split("/", 1)[-1] for p in eni["pods"]) or "-",
                )
        pods = Table(title="Pods")
        for col in ("pod", "node", "IPv4", "IPv6"):
            pods.add_column(col)
        for node, pod in self.pods:
            self.report.pods.append(
                {"pod": f"{pod.namespace}/{pod.name}", "node": node.name, "ip": pod.ip,
                 "ipv4": pod.ip4, "ipv6": pod.ip6, "ips": pod.ips}
            )
            pods.add_row(f"{pod.namespace}/{pod.name}", node.name, pod.ip4 or "-", pod.ip6 or "-")
        if not self.as_json:
            self.console.print(table)
            self.console.print(pods)

    def audit(self) -> bool:
        from vpcnet.ops.collect import run_audit

        violations = run_audit(self.stack.control_settings())
        self.report.audit = [v.to_dict() for v in violations]
        if violations:
            for v in violations:
                self.say(f"[red]✗ invariant {v.invariant} {v.kind}[/] {v.subject}: {v.detail}")
        else:
            self.say("[green]✓ audit: every invariant holds (EC2, Redis, Kubernetes, agents)[/]")
        return not violations

    def run(self) -> int:
        started = time.monotonic()
        try:  # whatever happens (failure, Ctrl-C, SIGTERM), tear everything down
            try:
                self.preflight()
                self.build_controlplane()
                self.start()
                self.join_nodes()
                self.run_pods()
                self.show_state()
                connected = self.connectivity()
                cycled = self.lifecycle()
                audited = self.audit()
                self.report.ok = connected and cycled and audited
            except Exception as e:  # the demo reports every failure, then cleans up
                self.report.error = f"{type(e).__name__}: {e}"
                self.say(f"[red]demo failed:[/] {self.report.error}")
                self.say(f"logs: {self.stack.log_dir}")
            self.report.seconds = round(time.monotonic() - started, 1)
            if self.keep and self.report.ok:
                self.report.flower_url = self.stack.flower_url
            self.print_summary()
            if self.keep and self.report.ok:
                self.wait_while_kept()
        finally:
            self.teardown()
        return 0 if self.report.ok else 1

    def print_summary(self) -> None:
        if self.as_json:
            print(json.dumps(self.report.__dict__, default=str), flush=True)
        else:
            verdict = "[green]demo OK[/]" if self.report.ok else "[red]demo FAILED[/]"
            self.console.print(f"{verdict} in {self.report.seconds}s")

    def wait_while_kept(self) -> None:
        """--keep: leave everything running until Ctrl-C / SIGTERM; say how to look at it."""
        env_file = self.workdir / "env"
        env = self.stack.control_env()
        env_file.write_text(
            "".join(f"{k}={env[k]}\n" for k in sorted(env) if k.startswith(("VPCNET_", "AWS_")))
        )
        env_file.chmod(0o600)
        self.say(
            f"[bold]--keep:[/] running. Flower: {self.stack.flower_url} "
            f"(admin / {self.stack.flower_password}); logs in {self.stack.log_dir}.\n"
            f"Look inside: set -a; . {env_file}; set +a; vpcnet status; vpcnet inspect node-a; "
            "vpcnet audit\nCtrl-C stops everything."
        )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)

    def teardown(self) -> None:
        for node, pod in reversed(self.pods):
            with contextlib.suppress(Exception):
                assert node.conf_dir is not None and node.bin_dir is not None
                conflist = sorted(node.conf_dir.glob("*.conflist"))[0]
                PodRuntime(conflist, [node.bin_dir, CNI_REFERENCE_DIR], "").destroy(pod)
        self.stack.stop()

