"""What an agent killed mid-ADD or mid-DEL leaves of IPv6 pods, and what a restarted
agent sweeps (#14): the pod rules (priorities 512/1536) and the NDP proxy entry of an
address of the node's /80 that the checkpoint does not assign go before the CNI server
serves; those of an assigned address, of an address outside the node's /80s, and of one
an interface still routes stay.

The real CNI server in this process, over a real node namespace, the real PodNetwork, a
real checkpoint written and loaded as the agent does, and a real unix socket. The
leftovers are made by the real PodNetwork programming a pod whose sandbox then vanished
(its veth, and with it the /128 route, gone; rules and proxy entry stay), as when the
runtime's DEL never reached an agent that was down. No traffic is sent.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from vpcnet.agent.checkpoint import Checkpoint
from vpcnet.agent.cniserver import CniServer
from vpcnet.agent.ipam import AttachmentKey, Ipam
from vpcnet.agent.ipam6 import Ipam6
from vpcnet.agent.podnet import PodNetwork, PodSpec
from vpcnet.agent.pools import NodePools
from vpcnet.domain import EniRecord, IpFamily, IPv6
from vpcnet.settings import AgentSettings
from vpcnet_sim import netns as nx
from vpcnet_sim.bench.cni_node import build_enis

pytestmark = pytest.mark.timeout(120)

PREFIX80 = ipaddress.IPv6Network("2001:db8:0:1:a::/80")  # the node's /80 (primary ENI)
OTHER80 = ipaddress.IPv6Network("2001:db8:0:1:b::/80")  # of the same /64, not the node's
SUBNET6 = ipaddress.IPv6Network("2001:db8:0:1::/64")
TABLE = 101  # the `from` rules' table, as for a /80 on ENI 1


@dataclass
class Node:
    """A node namespace with its primary ENI link, and the pieces of an agent's CNI server."""

    prefix: str
    settings: AgentSettings
    enis: list[EniRecord]
    podnet: PodNetwork
    servers: list[CniServer] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    pods: int = 0

    @property
    def ns(self) -> str:
        return f"{self.prefix}node"

    def pod(self, ip6: IPv6) -> tuple[AttachmentKey, str]:
        """Program a pod with ``ip6`` as an ADD does: (its key, its host veth)."""
        self.pods += 1
        name = f"{self.prefix}p{self.pods}"
        nx.netns_add(name)
        key = AttachmentKey(f"ctr-{self.pods}", "eth0")
        spec = PodSpec(key, f"/run/netns/{name}", None, None, 9001, ip6=ip6, table6=TABLE,
                       ip6_link_mac=self.enis[0].mac)
        return key, self.podnet.setup(spec).host_ifname

    def vanished_pod(self, ip6: IPv6) -> AttachmentKey:
        """A pod programmed with ``ip6`` whose sandbox then vanished with no DEL."""
        key, veth = self.pod(ip6)
        nx.ip(self.ns, "link", "del", veth)
        return key

    def restart(self, checkpoint: Checkpoint) -> None:
        """A new agent's CNI server over the pools the checkpoint holds, serving once it
        answers (it sweeps before it serves)."""
        data = checkpoint.load()
        assert data is not None
        pools = NodePools.from_checkpoint(data)
        srv = CniServer(self.settings, pools.ipam, self.podnet, checkpoint,
                        ipam6=pools.ipam6, family=lambda: IpFamily.DUAL)
        self.servers.append(srv)
        srv.bind()
        t = threading.Thread(target=srv.serve_forever, name="test-cni-server", daemon=True)
        t.start()
        self.threads.append(t)
        # Any reply will do: the server sweeps before it accepts the first connection.
        ask(self.settings.socket_path, {"command": "STATUS"})


@pytest.fixture
def node(netns_prefix: str, tmp_path: Path) -> Iterator[Node]:
    enis = [replace(e, ipv6_prefixes=(PREFIX80,), subnet_ipv6_cidr=SUBNET6) if e.device_index == 0 else e
            for e in build_enis(5)]
    ns = f"{netns_prefix}node"
    nx.netns_add(ns)
    nx.ip_batch(ns, [f"link add eni0 address {enis[0].mac} type veth peer name eni0r",
                     "link set eni0 up", "link set eni0r up", "link set lo up"])
    settings = AgentSettings(
        node_name="leftovers6",
        host_netns=ns,
        socket_path=str(tmp_path / "run" / "agent.sock"),
        checkpoint_path=str(tmp_path / "lib" / "checkpoint.json"),
    )
    n = Node(netns_prefix, settings, enis, PodNetwork(settings))
    try:
        yield n
    finally:
        for srv in n.servers:
            srv.shutdown()
        for t in n.threads:
            t.join(10)
        n.podnet.close()  # netns_prefix's teardown deletes the namespaces


def ask(path: str, request: dict[str, Any], timeout: float = 20.0) -> dict[str, Any]:
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


def rules6(ns: str) -> set[tuple[str, str, str]]:
    """The node's IPv6 pod rules: (to, from, table)."""
    return {(r.get("dst", "all"), r.get("src", "all"), str(r["table"]))
            for r in nx.ip_json(ns, "-6", "rule", "show") if r.get("priority") in (512, 1536)}


def pod_rules_of(*addrs: IPv6) -> set[tuple[str, str, str]]:
    """What an ADD makes for each of ``addrs``."""
    return {r for a in addrs for r in ((str(a), "all", "main"), ("all", str(a), str(TABLE)))}


def proxies(ns: str) -> set[tuple[str, str]]:
    """The node's NDP proxy entries: (address, link)."""
    return {(n["dst"], n["dev"]) for n in nx.ip_json(ns, "-6", "neigh", "show", "proxy")}


def test_a_restarted_agent_removes_ipv6_leftovers_of_unassigned_unrouted_addresses_of_its_80s_only(
    node: Node,
) -> None:
    ipam, ipam6 = Ipam(), Ipam6()
    ipam.set_enis(node.enis)
    ipam6.set_enis(node.enis)
    checkpoint = Checkpoint(node.settings.checkpoint_path)
    # A pod the checkpoint assigns, whose sandbox vanished while the agent was down
    # (the runtime's DEL will come: its entries are the DEL's to remove, not the sweep's).
    assigned = ipam6.allocate(AttachmentKey("ctr-assigned", "eth0")).ip
    checkpoint.sync(NodePools(ipam, ipam6))
    node.vanished_pod(assigned)
    # Addresses of the node's /80 the checkpoint does not assign: one whose sandbox
    # vanished (the agent died in its DEL, after the checkpoint freed it) and one of a
    # live sandbox (an interface routes it: it outranks the checkpoint).
    leftover, routed = PREFIX80[7], PREFIX80[8]
    node.vanished_pod(leftover)
    _, routed_veth = node.pod(routed)
    # Not of the node's /80s: whoever made these, they are not the agent's to remove.
    outside = OTHER80[5]
    node.vanished_pod(outside)
    assert rules6(node.ns) == pod_rules_of(assigned, leftover, routed, outside)
    assert proxies(node.ns) == {(str(a), "eni0") for a in (assigned, leftover, routed, outside)}

    node.restart(checkpoint)

    assert rules6(node.ns) == pod_rules_of(assigned, routed, outside)
    assert proxies(node.ns) == {(str(a), "eni0") for a in (assigned, routed, outside)}
    assert [r["dev"] for r in nx.ip_json(node.ns, "-6", "route", "show", f"{routed}/128")] == [routed_veth]
