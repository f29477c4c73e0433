"""A simulated VPC made of network namespaces, driven by the EC2 emulator.

Layout (every name starts with the caller's ``prefix``)::

    <prefix>vpc   the VPC router: one bridge per subnet ("br<i>") holding the subnet's
                  gateway (first host address), forwarding between subnets and to the
                  outside; ICMP redirects off.
    <prefix>out   "outside the VPC": a host on 198.51.100.0/24 (TEST-NET-2) reached
                  through the router, running an echo service that answers with the
                  source address it sees (to check SNAT).
    <prefix>n-<node>
                  one per instance: ``eth0`` carries the primary ENI's MAC and IP, with a
                  default route via its subnet gateway, as a booted EC2 instance has.

The fabric (``sync`` / ``start_fabric``) polls the emulator's admin API and makes the
namespaces follow EC2: every *attached* non-primary ENI is hot-plugged into its node's
namespace as ``eth<device index>`` with the ENI's MAC (down, default MTU — the agent
has to bring it up), the router end joining its subnet's bridge; detached ENIs are
unplugged. Like AWS's VPC, which delivers secondary IPs without ARP, the router holds
static (permanent) neighbour entries for every primary IP, secondary IP and prefix
address of every attached ENI -> that ENI's MAC, plus static bridge fdb entries; and it
answers ARP for any address it can route (proxy ARP), as the VPC router does, so a
node reaching an address of its own subnet goes through the router.

IPv6 (design point 6): the router also sits at ``fe80::1`` on every bridge, routes each
subnet's /64 on-link on its bridge (from ``subnets_ipv6`` or learnt from the ENIs' views)
and the outside network 2001:db8:ffff::/64 (the outside host at ``::10``, with the echo
service on IPv6 too: without NAT it sees the pod's own address). Nodes get their primary
ENI's IPv6 address as a /128 on ``eth0`` and ``default via fe80::1 dev eth0``. The router
holds static neighbours for the ENIs' assigned IPv6 addresses (the VPC delivers them, as
it does IPv4), but the addresses of delegated /80 prefixes (2**48 each) are resolved with
NDP on the subnet: the node's agent answers by NDP proxy (once EC2 shows a /80 released
or moved, the router forgets what it learnt for it). The router has no proxy entries
and no proxy_ndp of its own, so no neighbour solicitation for an address of a /80 is ever
answered by anyone but the node holding it; it sends no redirects either (IPv6 has no
``send_redirects``: an ip6tables rule in its OUTPUT drops them, as AWS never sends any).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import threading
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vpcnet_sim import netns as nx

log = logging.getLogger(__name__)

OUTSIDE_NET = ipaddress.IPv4Network("198.51.100.0/24")
OUTSIDE_GATEWAY = ipaddress.IPv4Address("198.51.100.1")
OUTSIDE_HOST = ipaddress.IPv4Address("198.51.100.10")
OUTSIDE_NET6 = ipaddress.IPv6Network("2001:db8:ffff::/64")
OUTSIDE_GATEWAY6 = ipaddress.IPv6Address("2001:db8:ffff::1")
OUTSIDE_HOST6 = ipaddress.IPv6Address("2001:db8:ffff::10")
ROUTER_LINK_LOCAL = ipaddress.IPv6Address("fe80::1")  # vpcnet.cni.protocol.POD_GATEWAY6 too
SUBNET6_PREFIX_LEN = 64
ECHO_PORT = 7007
ENI_MTU = 9001  # what EC2 instances configure on their primary interface


@dataclass(frozen=True)
class AttachedEni:
    instance_id: str
    eni_id: str
    mac: str
    device_index: int
    subnet_cidr: ipaddress.IPv4Network
    addresses: tuple[ipaddress.IPv4Address, ...]  # primary, secondaries, prefix addresses
    subnet_ipv6_cidr: ipaddress.IPv6Network | None = None
    ipv6_addresses: tuple[ipaddress.IPv6Address, ...] = ()  # the first is the primary's
    ipv6_prefixes: tuple[ipaddress.IPv6Network, ...] = ()  # /80s: resolved by NDP, not here


def _port_name(eni_id: str) -> str:
    """Router-side link name of an ENI: short, stable, unique enough (within IFNAMSIZ)."""
    return "e" + hashlib.sha1(eni_id.encode()).hexdigest()[:12]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def parse_instance(view: dict[str, Any]) -> list[AttachedEni]:
    """The attached ENIs of one ``/_sim/instances`` entry."""
    out = []
    for eni in view.get("enis", []):
        if eni.get("status") != "attached" or eni.get("device_index") is None:
            continue
        addrs: list[ipaddress.IPv4Address] = []
        if eni.get("primary_ip"):
            addrs.append(ipaddress.IPv4Address(eni["primary_ip"]))
        addrs += [ipaddress.IPv4Address(i) for i in eni.get("secondary_ips", [])]
        for p in eni.get("prefixes", []):
            addrs += list(ipaddress.IPv4Network(p))
        subnet6 = eni.get("subnet_ipv6_cidr")
        out.append(
            AttachedEni(
                instance_id=view["instance_id"],
                eni_id=eni["eni_id"],
                mac=str(eni["mac"]).lower(),
                device_index=int(eni["device_index"]),
                subnet_cidr=ipaddress.IPv4Network(eni["subnet_cidr"]),
                addresses=tuple(addrs),
                subnet_ipv6_cidr=ipaddress.IPv6Network(subnet6) if subnet6 else None,
                ipv6_addresses=tuple(ipaddress.IPv6Address(a) for a in eni.get("ipv6_addresses") or ()),
                ipv6_prefixes=tuple(ipaddress.IPv6Network(p) for p in eni.get("ipv6_prefixes") or ()),
            )
        )
    return out


def parse_subnets_ipv6(
    subnets: Sequence[ipaddress.IPv4Network], subnets_ipv6: Sequence[str | None]
) -> dict[ipaddress.IPv4Network, ipaddress.IPv6Network]:
    """``subnets_ipv6[i]`` is the IPv6 /64 of ``subnets[i]`` (None: an IPv4-only subnet)."""
    if len(subnets_ipv6) > len(subnets):
        raise ValueError(f"{len(subnets_ipv6)} IPv6 CIDRs for {len(subnets)} subnets")
    out: dict[ipaddress.IPv4Network, ipaddress.IPv6Network] = {}
    for subnet, cidr in zip(subnets, subnets_ipv6, strict=False):
        if cidr is None:
            continue
        net = ipaddress.IPv6Network(cidr)
        if net.prefixlen != SUBNET6_PREFIX_LEN:
            raise ValueError(f"subnet {subnet}'s IPv6 CIDR {net} is not a /{SUBNET6_PREFIX_LEN}")
        if net in out.values():
            raise ValueError(f"IPv6 CIDR {net} given to two subnets")
        out[subnet] = net
    return out


class SimVpc:
    def __init__(
        self,
        prefix: str,
        ec2_admin_url: str,
        cidr: str,
        subnets: Sequence[str],
        subnets_ipv6: Sequence[str | None] = (),
    ) -> None:
        if not prefix or len(prefix) > 40 or not re.fullmatch(r"[A-Za-z0-9_.-]+", prefix):
            raise ValueError(f"invalid namespace prefix {prefix!r}")
        self.prefix = prefix
        self.admin_url = ec2_admin_url.rstrip("/")
        if self.admin_url.endswith("/_sim"):
            self.admin_url = self.admin_url[: -len("/_sim")]
        self.cidr = ipaddress.IPv4Network(cidr)
        self.subnets = [ipaddress.IPv4Network(s) for s in subnets]
        # subnet -> its IPv6 /64, routed on its bridge; grows as ENIs' views name more
        self.subnets6 = parse_subnets_ipv6(self.subnets, subnets_ipv6)
        self._routed6: set[tuple[str, ipaddress.IPv6Network]] = set()  # (bridge, /64) done
        self._held80: dict[ipaddress.IPv6Network, str] = {}  # /80 -> its ENI's MAC, last sync
        self.router = f"{prefix}vpc"
        self.outside = f"{prefix}out"
        self.nodes: dict[str, str] = {}  # instance id -> node namespace
        self._echo: nx.EchoServer | None = None
        self._echo6: nx.EchoServer | None = None
        self._fabric: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one sync at a time (fabric thread vs callers)
        self.sync_errors = 0

    # -- addresses other helpers need ---------------------------------------------

    @property
    def outside_host_ip(self) -> str:
        return str(OUTSIDE_HOST)

    @property
    def outside_host_ip6(self) -> str:
        return str(OUTSIDE_HOST6)

    @property
    def outside_echo_port(self) -> int:
        return ECHO_PORT

    def gateway(self, subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
        return subnet.network_address + 1

    def bridge_of(self, subnet: ipaddress.IPv4Network) -> str | None:
        for i, s in enumerate(self.subnets):
            if s == subnet:
                return f"br{i}"
        return None

    # -- set-up ---------------------------------------------------------------------

    def setup(self) -> SimVpc:
        try:
            self._setup_router()
            self._setup_outside()
        except BaseException:
            self.teardown()
            raise
        return self

    def _setup_router(self) -> None:
        nx.netns_add(self.router)
        batch = []
        values = {
            "net/ipv4/ip_forward": "1",
            "net/ipv4/conf/all/send_redirects": "0",
            "net/ipv4/conf/default/send_redirects": "0",
            "net/ipv4/conf/all/rp_filter": "0",
            "net/ipv4/conf/default/rp_filter": "0",
            "net/ipv6/conf/all/forwarding": "1",
            "net/ipv6/conf/default/forwarding": "1",
        }
        existing = {link["ifname"] for link in nx.ip_json(self.router, "link", "show")}
        for i, subnet in enumerate(self.subnets):
            br = f"br{i}"
            if br not in existing:
                batch.append(f"link add {br} type bridge")
            # No MLD snooping: a node joins the solicited-node group of a proxied pod
            # address, but nobody queries; flooding is what a VPC's NDP needs.
            batch.append(f"link set {br} type bridge mcast_snooping 0")
            batch.append(f"link set {br} mtu {ENI_MTU} up")
            batch.append(f"address replace {self.gateway(subnet)}/{subnet.prefixlen} dev {br}")
            batch.append(f"address replace {ROUTER_LINK_LOCAL}/64 dev {br} nodad")
            # The VPC answers ARP for any address it routes, even on the asker's subnet.
            values[f"net/ipv4/conf/{br}/proxy_arp"] = "1"
            values[f"net/ipv4/conf/{br}/proxy_arp_pvlan"] = "1"
            values[f"net/ipv4/conf/{br}/send_redirects"] = "0"
            values[f"net/ipv4/neigh/{br}/proxy_delay"] = "0"
        nx.ip_batch(self.router, batch)
        nx.sysctl(self.router, values)
        self._drop_redirects6()
        for subnet, cidr in list(self.subnets6.items()):
            self._route_subnet6(subnet, cidr)

    def _drop_redirects6(self) -> None:
        """The VPC router never sends ICMPv6 redirects (a node sending to a pod on its
        own subnet must keep going through it); Linux has no IPv6 ``send_redirects``."""
        rule = ["OUTPUT", "-p", "ipv6-icmp", "--icmpv6-type", "redirect", "-j", "DROP"]
        exec_ = ["ip", "netns", "exec", self.router, "ip6tables", "-w"]
        if nx.run_rc([*exec_, "-C", *rule]) != 0:
            nx.run([*exec_, "-A", *rule])

    def _route_subnet6(self, subnet: ipaddress.IPv4Network, cidr: ipaddress.IPv6Network) -> None:
        """The subnet's /64 on-link on its bridge: the router resolves its addresses
        (nodes' own and their pods') with NDP there. Idempotent."""
        bridge = self.bridge_of(subnet)
        if bridge is None or (bridge, cidr) in self._routed6:
            return
        nx.ip(self.router, "-6", "route", "replace", str(cidr), "dev", bridge)
        self.subnets6[subnet] = cidr
        self._routed6.add((bridge, cidr))

    def _setup_outside(self) -> None:
        nx.netns_add(self.outside)
        if not any(li["ifname"] == "out0" for li in nx.ip_json(self.router, "link", "show")):
            nx.ip(self.router, "link", "add", "out0", "type", "veth", "peer", "name", "eth0",
                  "netns", self.outside)
        nx.ip_batch(
            self.router,
            [f"address replace {OUTSIDE_GATEWAY}/{OUTSIDE_NET.prefixlen} dev out0", "link set out0 up"],
        )
        nx.ip_batch(
            self.outside,
            [
                f"address replace {OUTSIDE_HOST}/{OUTSIDE_NET.prefixlen} dev eth0",
                "link set eth0 up",
                f"route replace default via {OUTSIDE_GATEWAY}",
            ],
        )
        nx.ip_batch(
            self.router,
            [f"address replace {OUTSIDE_GATEWAY6}/{OUTSIDE_NET6.prefixlen} dev out0 nodad"],
        )
        nx.ip_batch(
            self.outside,
            [
                f"address replace {OUTSIDE_HOST6}/{OUTSIDE_NET6.prefixlen} dev eth0 nodad",
                f"route replace default via {OUTSIDE_GATEWAY6} dev eth0",
            ],
        )
        if self._echo is None:
            self._echo = nx.EchoServer(self.outside, str(OUTSIDE_HOST), ECHO_PORT)
            self._echo.start()
        if self._echo6 is None:
            self._echo6 = nx.EchoServer(self.outside, str(OUTSIDE_HOST6), ECHO_PORT)
            self._echo6.start()

    # -- nodes ------------------------------------------------------------------------

    def node_netns(self, node_name: str) -> str:
        return f"{self.prefix}n-{_safe(node_name)}"

    def add_node(self, instance_id: str, node_name: str) -> str:
        """The instance's namespace, with its primary ENI as ``eth0``; returns its name."""
        view = self._get(f"/_sim/instances/{instance_id}")
        primary = next((e for e in parse_instance(view) if e.device_index == 0), None)
        if primary is None:
            raise nx.NetnsError(f"{instance_id} has no attached primary ENI")
        ns = self.node_netns(node_name)
        bridge = self.bridge_of(primary.subnet_cidr)
        if bridge is None:
            raise nx.NetnsError(f"{instance_id}'s subnet {primary.subnet_cidr} is not in this VPC")
        # Under the fabric's lock: a concurrent sync must not see the new primary port
        # before the node is registered (it would unplug it as unknown).
        with self._lock:
            nx.netns_add(ns)
            # A booted EC2 host: strict reverse-path filtering by default (most distributions).
            nx.sysctl(ns, {"net/ipv4/conf/all/rp_filter": "1", "net/ipv4/conf/default/rp_filter": "1"})
            self.nodes[instance_id] = ns
            self._plug(primary, ns, bridge)
            ip0 = primary.addresses[0]
            boot = [
                f"link set eth0 mtu {ENI_MTU} up",
                f"address replace {ip0}/{primary.subnet_cidr.prefixlen} dev eth0",
                f"route replace default via {self.gateway(primary.subnet_cidr)} dev eth0",
            ]
            if primary.ipv6_addresses:
                # What a dual-stack instance gets from DHCPv6 + RA: its address as a /128
                # and the router's link-local address as its default gateway.
                boot += [
                    f"address replace {primary.ipv6_addresses[0]}/128 dev eth0 nodad",
                    f"route replace default via {ROUTER_LINK_LOCAL} dev eth0",
                ]
            nx.ip_batch(ns, boot)
        self.sync()
        return ns

    def remove_node(self, instance_id: str) -> None:
        with self._lock:
            ns = self.nodes.pop(instance_id, None)
        if ns is not None:
            nx.netns_delete(ns)
        self.sync()

    # -- the fabric ---------------------------------------------------------------------

    def start_fabric(self, interval: float = 0.2) -> None:
        if self._fabric is not None:
            return
        self._stop.clear()
        self._fabric = threading.Thread(
            target=self._fabric_loop, args=(interval,), name=f"fabric-{self.prefix}", daemon=True
        )
        self._fabric.start()

    def stop_fabric(self) -> None:
        self._stop.set()
        if self._fabric is not None:
            self._fabric.join(10)
            self._fabric = None

    def _fabric_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.sync()
            except Exception as e:  # keep the fabric alive; tests see sync_errors
                self.sync_errors += 1
                log.warning("fabric sync failed: %s", e)

    def sync(self) -> None:
        """Make plugged links and the router's neighbour table follow EC2 (idempotent)."""
        with self._lock:
            if not self.nodes:
                self._sync_neighbours([])
                self._forget_moved_prefixes6([])
                return
            views = self._get("/_sim/instances")
            attached: list[AttachedEni] = []
            for view in views:
                if view.get("instance_id") in self.nodes and view.get("state") != "terminated":
                    attached += parse_instance(view)
            self._sync_ports(attached)
            self._sync_subnets6(attached)
            self._sync_neighbours(attached)
            self._forget_moved_prefixes6(attached)

    def _sync_ports(self, attached: list[AttachedEni]) -> None:
        wanted = {_port_name(e.eni_id): e for e in attached if e.device_index > 0}
        primaries = {_port_name(e.eni_id) for e in attached if e.device_index == 0}
        have = {
            li["ifname"]: li
            for li in nx.ip_json(self.router, "link", "show")
            if li["ifname"].startswith("e") and li["ifname"] != "eth0"
        }
        for name in sorted(set(have) - set(wanted) - primaries):
            # Detached (or its instance is gone): unplug; the node end goes with it.
            nx.ip(self.router, "link", "del", name, check=False)
            log.info("fabric: unplugged %s", have[name].get("ifalias", name))
        for name, eni in sorted(wanted.items()):
            if name in have:
                continue
            bridge = self.bridge_of(eni.subnet_cidr)
            ns = self.nodes.get(eni.instance_id)
            if bridge is None or ns is None:
                log.warning("fabric: cannot plug %s (subnet %s)", eni.eni_id, eni.subnet_cidr)
                continue
            self._plug(eni, ns, bridge)
            log.info("fabric: plugged %s into %s as eth%d", eni.eni_id, ns, eni.device_index)

    def _plug(self, eni: AttachedEni, ns: str, bridge: str) -> None:
        port = _port_name(eni.eni_id)
        ifname = f"eth{eni.device_index}"
        # A stale link with the same name (an ENI detached and another attached at
        # the same index before we noticed) goes first.
        if any(li["ifname"] == ifname for li in nx.ip_json(ns, "link", "show")):
            nx.ip(ns, "link", "del", ifname)
        nx.ip(
            self.router, "link", "add", port, "mtu", str(ENI_MTU), "type", "veth",
            "peer", "name", ifname, "address", eni.mac, "netns", ns,
        )
        nx.ip_batch(
            self.router,
            [f'link set {port} master {bridge} alias "{eni.instance_id} {eni.eni_id}" up'],
        )
        nx.run(["bridge", "-n", self.router, "fdb", "replace", eni.mac, "dev", port, "master", "static"])

    def _sync_subnets6(self, attached: list[AttachedEni]) -> None:
        for eni in attached:
            if eni.subnet_ipv6_cidr is not None:
                self._route_subnet6(eni.subnet_cidr, eni.subnet_ipv6_cidr)

    def _forget_moved_prefixes6(self, attached: list[AttachedEni]) -> None:
        """A /80 released (or now on another ENI): drop what the router learnt by NDP for
        its addresses at once, as the VPC knows where a prefix is; NUD alone would keep
        sending to the old MAC for seconds."""
        held = {p: eni.mac for eni in attached for p in eni.ipv6_prefixes}
        moved = [p for p, mac in self._held80.items() if held.get(p) != mac]
        for prefix in moved:
            nx.ip(self.router, "-6", "neigh", "flush", "to", str(prefix), check=False)
        self._held80 = held

    def _sync_neighbours(self, attached: list[AttachedEni]) -> None:
        # Static entries for the addresses EC2 assigned one by one (both families);
        # never for a /80's addresses: the router learns those by NDP from the node.
        wanted: dict[tuple[str, str], str] = {}  # (ip, bridge) -> mac
        for eni in attached:
            bridge = self.bridge_of(eni.subnet_cidr)
            if bridge is None:
                continue
            for addr in (*eni.addresses, *eni.ipv6_addresses):
                wanted[(str(addr), bridge)] = eni.mac
        have: dict[tuple[str, str], str] = {}
        for n in nx.ip_json(self.router, "neigh", "show", "nud", "permanent"):
            if "lladdr" in n and n.get("dev", "").startswith("br"):
                have[(n["dst"], n["dev"])] = str(n["lladdr"]).lower()
        cmds = [f"neigh del {ip_} dev {dev}" for (ip_, dev) in have if (ip_, dev) not in wanted]
        cmds += [
            f"neigh replace {ip_} lladdr {mac} dev {dev} nud permanent"
            for (ip_, dev), mac in wanted.items()
            if have.get((ip_, dev)) != mac
        ]
        nx.ip_batch(self.router, cmds)

    # -- EC2 admin API ------------------------------------------------------------------

    def _get(self, path: str) -> Any:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.admin_url + path, timeout=10) as resp:
            return json.loads(resp.read())

    # -- teardown -------------------------------------------------------------------------

    def teardown(self) -> None:
        """Remove every namespace (and so every link) this VPC made; safe to repeat."""
        self.stop_fabric()
        for echo in (self._echo, self._echo6):
            if echo is not None:
                echo.stop()
        self._echo = self._echo6 = None
        self._routed6.clear()
        self._held80.clear()
        teardown_prefix(self.prefix)
        self.nodes.clear()

    def __enter__(self) -> SimVpc:
        return self.setup()

    def __exit__(self, *exc: object) -> None:
        self.teardown()


def teardown_prefix(prefix: str) -> list[str]:
    """Crash cleanup: delete every namespace named ``prefix*``. All links of the VPC live
    in its namespaces (veth pairs are created directly inside them), so nothing is left."""
    return nx.delete_by_prefix(prefix)
