"""The agent's CNI server in this process, over real namespaces, a real checkpoint and
a real unix socket, under faults (issue 11 findings 6 and 8): a spooled DEL whose
replay fails, a serving loop that fails, a checkpoint that cannot be written."""

from __future__ import annotations

import dataclasses
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cni import links, wait_for
from vpcnet.agent.checkpoint import Checkpoint
from vpcnet.agent.cniserver import CniServer
from vpcnet.agent.ipam import AttachmentKey, Ipam
from vpcnet.agent.main import Agent, check_ready
from vpcnet.agent.podnet import PodNetwork, PodSpec
from vpcnet.cni import protocol as p
from vpcnet.settings import AgentSettings
from vpcnet_sim.bench.cni_node import build_enis, remove_netns, run_ip

PREFIX = "vpct3-"


class ObservedPodNetwork(PodNetwork):
    """The real PodNetwork, noting which IPs the checkpoint on disk held each time it
    was about to program a pod (the first side effect of an ADD)."""

    def __init__(self, settings: AgentSettings) -> None:
        super().__init__(settings)
        self.checkpoint_path = Path(settings.checkpoint_path)
        self.on_disk_at_setup: list[set[str]] = []

    def setup(self, spec: PodSpec) -> Any:
        try:
            payload = Checkpoint(self.checkpoint_path).load() or {"allocations": []}
            self.on_disk_at_setup.append({a["ip"] for a in payload["allocations"]})
        except Exception:
            self.on_disk_at_setup.append(set())
        return super().setup(spec)


@dataclass
class Node:
    """A node namespace with its ENI links, and the pieces of an agent's CNI server."""

    prefix: str
    tmp: Path
    settings: AgentSettings
    ipam: Ipam
    checkpoint: Checkpoint
    podnet: ObservedPodNetwork
    servers: list[CniServer] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    pods: int = 0

    @property
    def node_ns(self) -> str:
        return f"{self.prefix}node"

    @property
    def pending_dir(self) -> Path:
        return self.tmp / "run" / "pending-del"

    def server(self) -> CniServer:
        srv = CniServer(self.settings, self.ipam, self.podnet, self.checkpoint, pending_dir=str(self.pending_dir))
        self.servers.append(srv)
        return srv

    def start(self, srv: CniServer) -> threading.Thread:
        srv.bind()
        t = threading.Thread(target=srv.serve_forever, name="test-cni-server", daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def new_pod(self) -> str:
        self.pods += 1
        name = f"{self.prefix}p{self.pods}"
        run_ip("netns", "add", name)
        return f"/run/netns/{name}"

    def spool_del(self, key: AttachmentKey) -> Path:
        """What the plugin writes when the agent is unreachable at DEL."""
        self.pending_dir.mkdir(parents=True, exist_ok=True)
        path = self.pending_dir / p.pending_name(*key)
        path.write_text(json.dumps({"v": 1, "command": "DEL", "containerId": key.container_id, "ifname": key.ifname}))
        return path

    def break_disk(self) -> None:
        """The checkpoint's directory becomes a file: every write fails (as on a full disk)."""
        directory = Path(self.settings.checkpoint_path).parent
        for f in directory.iterdir():
            f.unlink()
        directory.rmdir()
        directory.write_text("")

    def heal_disk(self) -> None:
        directory = Path(self.settings.checkpoint_path).parent
        directory.unlink()
        directory.mkdir()

    def on_disk(self) -> list[str]:
        data = Checkpoint(self.settings.checkpoint_path).load()
        assert data is not None
        return [a["container_id"] for a in data["allocations"]]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    prefix = f"{PREFIX}{secrets.token_hex(3)}-"
    enis = build_enis(5)
    try:
        run_ip("netns", "add", f"{prefix}node")
        run_ip("-n", f"{prefix}node", "-batch", "-", input_text=(
            f"link add eni0 address {enis[0].mac} type veth peer name eni0r\n"
            "link set eni0 up\nlink set eni0r up\nlink set lo up\n"
        ))
        settings = AgentSettings(
            node_name="faults",
            host_netns=f"{prefix}node",
            socket_path=str(tmp_path / "run" / "agent.sock"),
            checkpoint_path=str(tmp_path / "lib" / "checkpoint.json"),
            ip_cooldown_seconds=30.0,
        )
        ipam = Ipam(cooldown_seconds=30.0)
        ipam.set_enis(enis)
        checkpoint = Checkpoint(settings.checkpoint_path)
        checkpoint.sync(ipam)
        n = Node(prefix, tmp_path, settings, ipam, checkpoint, ObservedPodNetwork(settings))
        try:
            yield n
        finally:
            for srv in n.servers:
                srv.shutdown()
            for t in n.threads:
                t.join(10)
            n.podnet.close()
    finally:
        remove_netns(prefix)


def ask(path: str, request: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """One request over the agent's socket, as the plugin sends it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(json.dumps({"v": 1, **request}).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply


def add_request(key: AttachmentKey, netns: str) -> dict[str, Any]:
    return {"command": "ADD", "containerId": key.container_id, "ifname": key.ifname, "netns": netns}


# -- finding 6: one bad spooled DEL must not kill the server ----------------------------------


def test_a_spooled_del_whose_replay_fails_is_kept_and_the_server_serves(node: Node) -> None:
    held = AttachmentKey("held1", "eth0")
    node.ipam.allocate(held)
    node.checkpoint.sync(node.ipam)
    spooled = node.spool_del(held)
    node.break_disk()  # the replay's checkpoint write fails (CheckpointError)
    srv = node.server()
    thread = node.start(srv)
    # Served, at once, although the replay at start failed.
    assert ask(node.settings.socket_path, {"command": "STATUS"}) == {"ok": True}
    assert thread.is_alive() and srv.serving and srv.failure == ""
    assert spooled.exists()  # kept: the IP stays held until the DEL is done
    node.heal_disk()
    srv.drain_pending()  # the next sweep (the periodic one may have come first) replays it
    assert not spooled.exists() and node.on_disk() == []
    # And ADD works on that server.
    netns = node.new_pod()
    reply = ask(node.settings.socket_path, add_request(AttachmentKey("new1", "eth0"), netns))
    assert reply["ok"], reply


@pytest.mark.parametrize(
    "content",
    [b'{"containerId": "bad1", "ifname": 5}', b"\xff\xfe not json", b"[1, 2]", b'{"containerId": "../x", "ifname": "eth0"}'],
)
def test_an_unparseable_spool_file_is_quarantined_and_the_server_serves(node: Node, content: bytes) -> None:
    node.pending_dir.mkdir(parents=True)
    bad = node.pending_dir / p.pending_name("bad1", "eth0")
    bad.write_bytes(content)
    (node.pending_dir / "dir.json").mkdir()  # not even a file
    good_key = AttachmentKey("good1", "eth0")
    node.ipam.allocate(good_key)
    node.checkpoint.sync(node.ipam)
    good = node.spool_del(good_key)
    srv = node.server()
    node.start(srv)
    assert ask(node.settings.socket_path, {"command": "STATUS"}) == {"ok": True}
    assert not good.exists() and node.on_disk() == []  # the good one was replayed
    quarantined = sorted(f.name for f in (node.pending_dir / "quarantine").iterdir())
    assert quarantined == sorted([bad.name, "dir.json"])
    assert sorted(f.name for f in node.pending_dir.iterdir()) == ["quarantine"]


def test_a_failing_serving_loop_is_restarted(node: Node) -> None:
    srv = node.server()
    srv.bind()
    assert srv.transport._server is not None
    failures = [RuntimeError("injected: the loop's selector broke")]
    original = srv.transport._server.service_actions

    def service_actions() -> None:
        if failures:
            raise failures.pop()
        original()

    srv.transport._server.service_actions = service_actions  # type: ignore[method-assign]
    node.start(srv)
    wait_for(lambda: srv.restarts == 1 and srv.serving, "the loop restarted")
    assert ask(node.settings.socket_path, {"command": "STATUS"}) == {"ok": True}
    assert srv.failure == ""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_server_thread_leaves_no_socket_to_wait_on(node: Node) -> None:
    srv = node.server()
    srv.bind()
    assert srv.transport._server is not None

    def service_actions() -> None:
        raise SystemExit("injected: the thread is ending")

    srv.transport._server.service_actions = service_actions  # type: ignore[method-assign]
    thread = node.start(srv)
    thread.join(30)
    assert not thread.is_alive()
    assert "SystemExit" in srv.failure and not srv.serving
    # A client fails at once (the plugin then spools DELs, answers ADD with 11)
    # instead of queueing on a socket nobody accepts.
    with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
        ask(node.settings.socket_path, {"command": "STATUS"})


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_agent_reports_not_ready_when_its_cni_server_died(node: Node) -> None:
    """What kubelet's readiness probe (``vpcnet agent --check-ready``) reads."""
    srv = node.server()
    srv.bind()
    assert srv.transport._server is not None

    def service_actions() -> None:
        raise SystemExit("injected: the thread is ending")

    srv.transport._server.service_actions = service_actions  # type: ignore[method-assign]
    node.start(srv).join(30)
    settings = dataclasses.replace(node.settings, redis_url="redis://127.0.0.1:9/0")  # nothing listens
    agent = Agent(settings)
    agent._server = srv
    agent.ready = True  # as after a good pass: the node's ENIs are programmed
    agent._report()
    ok, why = check_ready(Path(settings.status_path), max_age=30, now=time.time())
    assert not ok and "CNI server stopped" in why and "SystemExit" in why


# -- finding 8: durable before programmed ------------------------------------------------------


def test_the_checkpoint_holds_the_ip_before_the_pod_is_programmed(node: Node) -> None:
    srv = node.server()
    netns = node.new_pod()
    reply = srv.handle(json.dumps({"v": 1, **add_request(AttachmentKey("d1", "eth0"), netns)}).encode())
    assert reply["ok"], reply
    assert node.podnet.on_disk_at_setup == [{reply["ip"]}]


def test_no_pod_is_programmed_when_the_checkpoint_cannot_be_written(node: Node) -> None:
    srv = node.server()
    netns = node.new_pod()
    node.break_disk()
    reply = srv.handle(json.dumps({"v": 1, **add_request(AttachmentKey("d2", "eth0"), netns)}).encode())
    assert not reply["ok"] and reply["code"] == p.ERR_INTERNAL and "checkpoint" in reply["details"]
    assert node.podnet.on_disk_at_setup == []  # nothing was ever programmed
    assert {n for n in links(node.node_ns) if n.startswith("vpc")} == set()
    assert node.ipam.allocations() == []
