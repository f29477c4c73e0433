"""A node for the CNI benchmark and the namespace tests: real namespaces, real agent.

The node is its own network namespace (``<prefix>-node``) holding one link per ENI
(a veth end), carrying the ENI's MAC; the pool comes from ``EniRecord``s built here. The agent's
CNI server runs in a separate process (``python -m vpcnet_sim.bench.cni_node serve``), so
the plugin really talks to it over the unix socket, exactly as on a node. Pods are
fresh namespaces (``<prefix>-p<n>``); every namespace with the prefix is removed on
``stop``, whatever happened.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vpcnet.domain import EniRecord

IPS_PER_ENI = 49  # like a large Nitro instance: 50 addresses per ENI, one primary
READY_LINE = "VPCNET-CNI-AGENT-READY"


def build_enis(pods: int, subnet: str = "10.77.0.0/16", ips_per_eni: int = IPS_PER_ENI) -> list[EniRecord]:
    """Enough ENIs for ``pods`` IPs: ENI 0 is primary; the others use secondary IPs."""
    net = ipaddress.IPv4Network(subnet)
    base = int(net.network_address)
    count = max(1, -(-pods // ips_per_eni))
    enis = []
    for i in range(count):
        first = base + 256 * (i + 1)  # ENI i's pod IPs in 10.77.<i+1>.0/24
        enis.append(
            EniRecord(
                eni_id=f"eni-{i:017x}",
                mac=f"02:7e:00:00:{i // 256:02x}:{i % 256:02x}",
                device_index=i,
                subnet_id="subnet-bench",
                subnet_cidr=net,
                primary_ip=ipaddress.IPv4Address(base + 10 + i),
                ips=tuple(ipaddress.IPv4Address(first + 1 + j) for j in range(ips_per_eni)),
                is_primary=i == 0,
            )
        )
    return enis


def run_ip(*args: str, input_text: str | None = None) -> None:
    proc = subprocess.run(["ip", *args], input=input_text, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def list_netns(prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix))
    except FileNotFoundError:
        return []


def remove_netns(prefix: str) -> None:
    for name in list_netns(prefix):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=60)


class SimNode:
    def __init__(
        self,
        prefix: str,
        workdir: Path,
        pods: int,
        *,
        mtu: int = 9001,
        cooldown_seconds: float = 30.0,
        ready: bool = True,
    ) -> None:
        self.prefix = prefix
        self.workdir = workdir
        self.node_ns = f"{prefix}-node"
        self.enis = build_enis(pods)
        self.mtu = mtu
        self.cooldown_seconds = cooldown_seconds
        self.ready = ready
        self.socket_path = workdir / "run" / "agent.sock"
        self.pending_dir = workdir / "run" / "pending-del"
        self.checkpoint_path = workdir / "checkpoint.json"
        self.log_file = workdir / "cni.log"
        self.timings_path = workdir / "timings.jsonl"
        self.stats_path = workdir / "agent-stats.json"  # written when the agent stops
        self.agent_log = workdir / "agent.log"
        self.proc: subprocess.Popen[str] | None = None
        self._pods = 0
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            run_ip("netns", "add", self.node_ns)
            batch = "".join(
                # veth, not dummy: kernels without the dummy module are common in CI VMs
                f"link add eni{e.device_index} address {e.mac} type veth peer name eni{e.device_index}r\n"
                f"link set eni{e.device_index} up\nlink set eni{e.device_index}r up\n"
                for e in self.enis
            )
            run_ip("-n", self.node_ns, "-batch", "-", input_text=batch + "link set lo up\n")
            self.start_agent()
        except BaseException:
            self.stop()
            raise

    def start_agent(self) -> None:
        config = {
            "node_ns": self.node_ns,
            "socket_path": str(self.socket_path),
            "pending_dir": str(self.pending_dir),
            "checkpoint_path": str(self.checkpoint_path),
            "timings_path": str(self.timings_path),
            "stats_path": str(self.stats_path),
            "log_file": str(self.log_file),
            "mtu": self.mtu,
            "cooldown_seconds": self.cooldown_seconds,
            "ready": self.ready,
            "enis": [json.loads(e.to_json()) for e in self.enis],
        }
        cfg = self.workdir / "agent.json"
        cfg.write_text(json.dumps(config))
        log = open(self.agent_log, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vpcnet_sim.bench.cni_node", "serve", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        log.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if READY_LINE not in line:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"agent did not start: {line!r}; see {self.agent_log}")

    def stop_agent(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def stop(self) -> None:
        try:
            self.stop_agent()
        finally:
            remove_netns(self.prefix)

    # -- pods and the plugin ------------------------------------------------------------------

    def new_pod(self) -> tuple[str, str]:
        """(netns name, path) of a fresh pod namespace."""
        with self._lock:
            self._pods += 1
            name = f"{self.prefix}-p{self._pods}"
        run_ip("netns", "add", name)
        return name, f"/run/netns/{name}"

    def conf(self, version: str = "1.1.0", **extra: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "cniVersion": version,
            "name": "vpcnet",
            "type": "vpcnet-cni",
            "agentSocket": str(self.socket_path),
            "logFile": str(self.log_file),
            "mtu": self.mtu,
        }
        conf.update(extra)
        return conf

    def agent_stats(self) -> dict[str, Any]:
        """What the agent counted (after ``stop_agent``): ``requests`` served,
        ``inprocess`` (raw invocations the launcher's fast path handed it and that it
        answered) and ``fallbacks`` (raw invocations it left to the exec'd plugin)."""
        stats: dict[str, Any] = json.loads(self.stats_path.read_text())
        return stats

    def checkpoint(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.checkpoint_path.read_text())
        payload: dict[str, Any] = doc["payload"]
        return payload

    def pool_ips(self) -> set[ipaddress.IPv4Address]:
        return {ip for e in self.enis for ip in e.pod_ips()}


def cni_env(
    command: str, container_id: str = "", netns: str = "", ifname: str = "eth0", args: str = "",
    path: str = "/usr/lib/cni",
) -> dict[str, str]:
    env = {"CNI_COMMAND": command, "CNI_PATH": path, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if container_id:
        env["CNI_CONTAINERID"] = container_id
    if netns:
        env["CNI_NETNS"] = netns
    if ifname:
        env["CNI_IFNAME"] = ifname
    if args:
        env["CNI_ARGS"] = args
    return env


def exec_plugin(
    plugin: str | Sequence[str], env: Mapping[str, str], conf: Mapping[str, Any] | str, timeout: float = 120,
) -> tuple[int, Any, float]:
    """Exec a CNI plugin as a runtime does: (exit status, parsed stdout or raw text, seconds)."""
    argv = [plugin] if isinstance(plugin, str) else list(plugin)
    data = conf if isinstance(conf, str) else json.dumps(conf)
    start = time.perf_counter()
    proc = subprocess.run(argv, input=data.encode(), env=dict(env), capture_output=True, timeout=timeout)
    elapsed = time.perf_counter() - start
    out = proc.stdout.decode(errors="replace").strip()
    try:
        parsed: Any = json.loads(out) if out else None
    except ValueError:
        parsed = out
    return proc.returncode, parsed, elapsed


# -- the agent process -------------------------------------------------------------------------


def serve(config_path: str) -> int:
    """The agent side: a CniServer over a pool built from the config's EniRecords."""
    import logging

    from vpcnet.agent.checkpoint import Checkpoint
    from vpcnet.agent.cniserver import CniServer
    from vpcnet.agent.cniserver.timing import RequestTiming
    from vpcnet.agent.ipam import Ipam
    from vpcnet.agent.podnet import PodNetwork
    from vpcnet.cni.plugin import main as plugin_main
    from vpcnet.settings import AgentSettings

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    cfg = json.loads(Path(config_path).read_text())
    settings = AgentSettings(
        node_name="bench",
        host_netns=cfg["node_ns"],
        socket_path=cfg["socket_path"],
        checkpoint_path=cfg["checkpoint_path"],
        log_file=cfg["log_file"],  # the conf's logFile: the in-process fast path honours it
        mtu=cfg["mtu"],
        ip_cooldown_seconds=cfg["cooldown_seconds"],
    )
    checkpoint = Checkpoint(settings.checkpoint_path)
    saved = checkpoint.load()
    ipam = (
        Ipam.from_checkpoint(saved, cooldown_seconds=settings.ip_cooldown_seconds)
        if saved is not None
        else Ipam(cooldown_seconds=settings.ip_cooldown_seconds)
    )
    ipam.set_enis([EniRecord.from_json(json.dumps(e)) for e in cfg["enis"]])
    checkpoint.sync(ipam)
    timings: list[RequestTiming] = []
    server = CniServer(
        settings,
        ipam,
        PodNetwork(settings),
        checkpoint,
        is_ready=lambda: bool(cfg["ready"]),
        pending_dir=cfg["pending_dir"],
        observe=timings.append,
        plugin_main=plugin_main,
    )
    server.bind()
    server.drain_pending()  # as serve_forever does first; done here so READY means drained
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(READY_LINE, flush=True)
    stop.wait()
    server.shutdown()
    thread.join(10)
    with open(cfg["timings_path"], "w") as f:
        for t in timings:
            f.write(json.dumps({"command": t.command, "ok": t.ok, "total": t.total,
                                "checkpoint": t.checkpoint, "netlink": t.netlink}) + "\n")
    Path(cfg["stats_path"]).write_text(json.dumps({
        "requests": server.requests, "inprocess": server.inprocess.requests if server.inprocess else 0,
        "fallbacks": server.inprocess.fallbacks if server.inprocess else 0,
    }))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vpcnet_sim.bench.cni_node")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the agent's CNI server for a SimNode")
    s.add_argument("config")
    args = parser.parse_args(argv)
    return serve(args.config)


if __name__ == "__main__":
    sys.exit(main())
