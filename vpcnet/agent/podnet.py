"""The agent's side of CNI ADD/DEL/CHECK: a pod's veth, addresses, routes and rules.

Pod side (its netns): ``CNI_IFNAME`` with ``<ip>/32``, ``169.254.1.1 dev eth0 scope
link``, ``default via 169.254.1.1`` and a permanent neighbour 169.254.1.1 -> host veth
MAC, so the pod never ARPs for its gateway. Host side (the node's netns: the current
one, or ``AgentSettings.host_netns`` in simulation): the veth named ``veth_prefix`` +
hash of (container id, ifname), a ``/32`` route to the pod through it, the rule
``to <ip> lookup main`` (priority 512) and, for an IP of a non-primary ENI,
``from <ip> lookup <the ENI's table>`` (priority 1536) so replies leave by the ENI
that owns the address (tables and priorities: ``vpcnet.agent.routing``).

IPv6 (an ipv6-only or dual pod, ``PodSpec.ip6``): pod side ``<ip6>/128`` (nodad, so it
is usable at once), ``default via fe80::1 dev eth0`` and a permanent neighbour
fe80::1 -> host veth MAC; the host veth carries fe80::1/64 (nodad). Host side the
``/128`` route through the veth and the same two rules as IPv4 (``table6``), plus an
NDP proxy entry ``<ip6>`` on the ENI link holding the pod's /80 (found by MAC, with
``proxy_ndp=1`` on it): the VPC router resolves pod addresses by NDP on the subnet,
and the node answers for them. No address of the /80 is on the ENI itself. The IPv6
requests ride the same batches (no subprocess; the proxy_ndp sysctl is written once
per ENI link and process). Measured on the 2-core test machine (shared, medians of 18
pods): setup 1.6 ms IPv4, 1.9 ms IPv6, 2.5 ms dual; DEL (``keep_link``) 0.33, 0.47
and 0.64 ms.

ADD opens CNI_NETNS only when it is a pod's network namespace (never blocking; never the
node's own), refuses an IP that an interface routes already (a live sandbox outranks
the IPAM), replaces pod rules left behind for an IP nothing routes, and rolls back
everything it made when any step fails. DEL is idempotent and succeeds when the
namespace or the interfaces are gone already. Netlink goes through
``vpcnet.agent.nlbatch`` (batched requests; see there for the measurements).
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyroute2 import netns as pr_netns

from vpcnet.agent import nlbatch as nl
from vpcnet.agent.ipam import AttachmentKey
from vpcnet.agent.routing import ENI_TABLE_BASE, MAIN_TABLE, PRIO_FROM_POD, PRIO_TO_POD
from vpcnet.cni.protocol import POD_GATEWAY, POD_GATEWAY6
from vpcnet.domain import EniRecord, IPv4, IPv6, IPv6Net
from vpcnet.errors import PodNetworkError
from vpcnet.host_sysctls import FORWARDING_ON, IP_FORWARD, PROXY_NDP_ON, proxy_ndp
from vpcnet.settings import AgentSettings

IFNAMSIZ = 16  # including the terminating NUL
GATEWAY6_PREFIXLEN = 64  # fe80::1/64 on the host veth: the link-local prefix


def eni_table(eni: EniRecord) -> int | None:
    """The route table of ``from <pod ip>`` for an IP of ``eni``; None on the primary ENI."""
    if eni.is_primary or eni.device_index == 0:
        return None
    return ENI_TABLE_BASE + eni.device_index


def host_ifname(prefix: str, key: AttachmentKey) -> str:
    digest = hashlib.sha1(f"{key.container_id}/{key.ifname}".encode(), usedforsecurity=False)
    return prefix + digest.hexdigest()[: IFNAMSIZ - 1 - len(prefix)]


def veth_macs(key: AttachmentKey) -> tuple[str, str]:
    """(host, pod) MACs: locally administered unicast, stable per attachment.

    Chosen up front so the pod's neighbour entry and the result need no lookup.
    """
    d = hashlib.sha256(f"{key.container_id}/{key.ifname}".encode()).digest()
    host = "02:" + ":".join(f"{b:02x}" for b in d[:5])
    pod = "0a:" + ":".join(f"{b:02x}" for b in d[5:10])
    return host, pod


@dataclass(frozen=True, slots=True)
class PodSpec:
    key: AttachmentKey
    netns: str  # path of the pod's network namespace (CNI_NETNS)
    ip: IPv4 | None  # None: an ipv6-only pod
    table: int | None  # eni_table() of the IP's ENI
    mtu: int
    ip6: IPv6 | None = None  # None: an ipv4-only pod
    table6: int | None = None  # eni_table() of the ENI holding ip6's /80
    ip6_link_mac: str = ""  # that ENI's MAC: the host link that answers NDP for ip6


@dataclass(frozen=True, slots=True)
class PodLink:
    host_ifname: str
    host_mac: str
    pod_mac: str
    mtu: int


class PodNetwork:
    def __init__(self, settings: AgentSettings) -> None:
        self.veth_prefix = settings.veth_prefix
        self.mtu = settings.mtu
        # Hold the node namespace open: a wrong name fails here, and it cannot
        # vanish under us while the agent runs.
        self._host_fd = nl.open_netns(nl.netns_path(settings.host_netns)) if settings.host_netns else None
        # Namespaces that are never a pod's: the node's, and the agent process's own
        # (the same on a real node). A pod programmed into one would take over the
        # node's routes and could collide with its interfaces.
        own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._not_pods = {nl.netns_identity(own)}
        finally:
            os.close(own)
        if self._host_fd is not None:
            self._not_pods.add(nl.netns_identity(self._host_fd))
        self._idle: list[nl.Rtnl] = []
        self._lock = threading.Lock()
        # ENI links answering NDP for pods: MAC -> (ifname, ifindex), and the links
        # (ifname, ifindex) whose proxy_ndp this process turned on; both re-checked.
        self._ndp_links: dict[str, tuple[str, int]] = {}
        self._proxy_ndp_on: set[tuple[str, int]] = set()

    def close(self) -> None:
        with self._lock:
            for sock in self._idle:
                sock.close()
            self._idle.clear()
        if self._host_fd is not None:
            os.close(self._host_fd)
            self._host_fd = None

    @contextmanager
    def _host(self) -> Iterator[nl.Rtnl]:
        """A host-namespace netlink socket from a small pool (one per concurrent user)."""
        with self._lock:
            sock = self._idle.pop() if self._idle else None
        if sock is None:
            sock = nl.Rtnl(self._host_fd)
        try:
            yield sock
        except BaseException:
            sock.close()  # unread replies could confuse the next user
            raise
        with self._lock:
            self._idle.append(sock)

    def host_ifname(self, key: AttachmentKey) -> str:
        return host_ifname(self.veth_prefix, key)

    def open_pod_netns(self, path: str) -> int:
        """An fd of the pod namespace at ``path`` (CNI_NETNS), without ever blocking.

        ``InvalidNetns`` when it is not a network namespace or is the node's own;
        ``PodNetworkError`` with the errno when it cannot be opened (ENOENT: gone).
        """
        fd = nl.open_netns(path)
        if nl.netns_identity(fd) in self._not_pods:
            os.close(fd)
            raise nl.InvalidNetns(f"{path} is the node's own network namespace, not a pod's")
        return fd

    def validate_netns(self, path: str) -> None:
        """``open_pod_netns`` without keeping the fd: check CNI_NETNS before any change."""
        os.close(self.open_pod_netns(path))

    def ensure_forwarding(self) -> None:
        """net.ipv4.ip_forward=1 in the node namespace: pods' traffic is routed through it."""
        _write_sysctl(self._host_fd, IP_FORWARD, FORWARDING_ON)

    # -- ADD -----------------------------------------------------------------------------

    def setup(self, spec: PodSpec) -> PodLink:
        if spec.ip is None and spec.ip6 is None:
            raise PodNetworkError(f"{spec.key}: no address to configure", errno=errno.EINVAL)
        if spec.ip6 is not None and not spec.ip6_link_mac:
            raise PodNetworkError(
                f"{spec.key}: no host link (ip6_link_mac) to answer NDP for {spec.ip6}", errno=errno.EINVAL
            )
        hname = self.host_ifname(spec.key)
        hmac, pmac = veth_macs(spec.key)
        pod_fd = self.open_pod_netns(spec.netns)
        try:
            with self._host() as host:
                made: list[nl.Request] = []  # undo list, besides the veth itself
                try:
                    self._create_veth(host, hname, hmac, spec, pmac, pod_fd)
                    with nl.Rtnl(pod_fd) as pod:
                        pidx = pod.link_index(spec.key.ifname)
                        if pidx is None:
                            raise PodNetworkError(f"{spec.key.ifname} vanished from {spec.netns}", errno=errno.ENODEV)
                        pod.check(_pod_requests(pidx, spec, hmac), f"configuring {spec.key.ifname} in {spec.netns}")
                    hidx = host.link_index(hname)
                    if hidx is None:
                        raise PodNetworkError(f"host veth {hname} vanished", errno=errno.ENODEV)
                    # IPv6 first: its steps can fail on the node's side (the ENI link
                    # gone); either family's failure undoes both.
                    if spec.ip6 is not None:
                        self._host_routing6(host, hidx, hname, spec, made)
                    if spec.ip is not None:
                        self._host_routing(host, hidx, hname, str(spec.ip), spec.table, made)
                except BaseException:
                    self._rollback(host, hname, made)
                    raise
        finally:
            os.close(pod_fd)
        return PodLink(hname, hmac, pmac, spec.mtu)

    def _create_veth(
        self, host: nl.Rtnl, hname: str, hmac: str, spec: PodSpec, pmac: str, pod_fd: int
    ) -> None:
        veth = nl.veth_pair(hname, hmac, spec.key.ifname, pmac, pod_fd, spec.mtu)
        code = host.request([veth])[0]
        if code == errno.EEXIST and host.link_index(hname) is not None:
            # Our own leftover for this attachment (an ADD cut short): replace it.
            host.check([nl.link_delete(hname)], f"removing stale {hname}", ok=(errno.ENODEV,))
            code = host.request([nl.veth_pair(hname, hmac, spec.key.ifname, pmac, pod_fd, spec.mtu)])[0]
        if code == errno.EEXIST:
            raise PodNetworkError(f"{spec.key.ifname} already exists in {spec.netns}", errno=code)
        if code:
            raise PodNetworkError(f"creating veth {hname}: {os.strerror(code)}", errno=code)

    def _host_routing(
        self, host: nl.Rtnl, hidx: int, hname: str, ip: str, table: int | None, made: list[nl.Request]
    ) -> None:
        """The host route and pod rules of one address ``ip`` (either family)."""
        # The route first, alone: it refuses (EEXIST) an IP that something routes
        # already, a live interface outranking our IPAM (a sandbox an agent programmed
        # and then forgot, or another owner), and then no rule of that IP is touched.
        length = nl.host_len(ip)
        code = host.request([nl.route(ip, length, hidx)])[0]
        if code:
            raise PodNetworkError(f"route {ip}/{length} dev {hname}: {os.strerror(code)}", errno=code)
        # The IP is ours and nothing routes it: any pod rule left for it is a leftover
        # (an agent that died in a DEL, or a forgotten pod whose veth is gone), and a
        # `from <ip>` rule into another ENI's table would misroute this pod's replies.
        # One batch: delete one of each (whatever its table), then add ours.
        batch = [
            nl.rule(PRIO_TO_POD, dst=ip, table=0, delete=True),
            nl.rule(PRIO_FROM_POD, src=ip, table=0, delete=True),
            nl.rule(PRIO_TO_POD, dst=ip, table=MAIN_TABLE),
        ]
        undo = [nl.rule(PRIO_TO_POD, dst=ip, table=MAIN_TABLE, delete=True)]
        if table is not None:
            batch.append(nl.rule(PRIO_FROM_POD, src=ip, table=table))
            undo.append(nl.rule(PRIO_FROM_POD, src=ip, table=table, delete=True))
        codes = host.request(batch)
        made.extend(u for u, c in zip(undo, codes[2:], strict=True) if c == 0)  # the route goes with the veth
        for code in codes[:2]:
            if code and code != errno.ENOENT:
                raise PodNetworkError(f"removing leftover rules of {ip}: {os.strerror(code)}", errno=code)
        for code in codes[2:]:
            if code:
                raise PodNetworkError(f"ip rule for {ip}: {os.strerror(code)}", errno=code)
        if 0 in codes[:2]:  # there were leftovers: there may be more than one of them
            self._remove_other_rules(host, ip, table)

    def _host_routing6(self, host: nl.Rtnl, hidx: int, hname: str, spec: PodSpec, made: list[nl.Request]) -> None:
        """The IPv6 half of the host side: the pod's gateway, route, rules, NDP proxy."""
        ip6 = str(spec.ip6)
        # The gateway address goes with the veth (no undo entry needed).
        host.check([nl.address(hidx, POD_GATEWAY6, GATEWAY6_PREFIXLEN)], f"{POD_GATEWAY6} on {hname}")
        self._host_routing(host, hidx, hname, ip6, spec.table6, made)
        link, index = self.ndp_link(host, spec.ip6_link_mac)
        self._ensure_proxy_ndp(link, index)
        # EEXIST: a leftover entry of this address (nothing routed it, see above): ours now.
        code = host.request([nl.proxy_neighbour(index, ip6)])[0]
        if code in (0, errno.EEXIST):
            made.append(nl.proxy_neighbour(index, ip6, delete=True))
        if code not in (0, errno.EEXIST):
            raise PodNetworkError(f"NDP proxy entry {ip6} dev {link}: {os.strerror(code)}", errno=code)

    def ndp_link(self, host: nl.Rtnl, mac: str) -> tuple[str, int]:
        """(ifname, ifindex) of the host link with ``mac``: the ENI answering NDP.

        Cached; a cached link is re-checked by name (one request) since an ENI can be
        detached and another attached. Pod veths are skipped, as hostnet does, so an
        ENI wins any MAC clash.
        """
        mac = mac.lower()
        with self._lock:
            cached = self._ndp_links.get(mac)
        if cached is not None and host.link_index(cached[0]) == cached[1]:
            return cached
        found = None
        for m in host.dump(*nl.dump_request("link")):
            name = str(_attr(m, "IFLA_IFNAME") or "")
            if str(_attr(m, "IFLA_ADDRESS") or "").lower() == mac and not name.startswith(self.veth_prefix):
                found = (name, int(m["index"]))
                break
        if found is None:
            raise PodNetworkError(f"no host link has MAC {mac} (the ENI holding the pod's IPv6 prefix)", errno=errno.ENODEV)
        with self._lock:
            self._ndp_links[mac] = found
        return found

    def _ensure_proxy_ndp(self, link: str, index: int) -> None:
        """proxy_ndp=1 on ``link``: without it the kernel ignores its proxy entries.

        Host convergence sets it too (``hostplan``); the pod path makes sure of it once
        per link and process, so the first ADD after an ENI's attachment cannot race it.
        """
        with self._lock:
            if (link, index) in self._proxy_ndp_on:
                return
        _write_sysctl(self._host_fd, proxy_ndp(link), PROXY_NDP_ON)
        with self._lock:
            self._proxy_ndp_on.add((link, index))

    def _remove_other_rules(self, host: nl.Rtnl, ip: str, table: int | None) -> None:
        """Delete pod rules of ``ip`` other than the ones ADD just made."""
        stale = []
        for r in host.dump(*nl.dump_request("rule", nl.family_of(ip))):
            prio = _attr(r, "FRA_PRIORITY")
            rule_table = _attr(r, "FRA_TABLE") or r["table"]
            if prio == PRIO_TO_POD and _attr(r, "FRA_DST") == ip and rule_table != MAIN_TABLE:
                stale.append(nl.rule(prio, dst=ip, table=rule_table, delete=True))
            elif prio == PRIO_FROM_POD and _attr(r, "FRA_SRC") == ip and rule_table != table:
                stale.append(nl.rule(prio, src=ip, table=rule_table, delete=True))
        host.check(stale, f"removing leftover rules of {ip}", ok=(errno.ENOENT,))

    def _rollback(self, host: nl.Rtnl, hname: str, made: list[nl.Request]) -> None:
        # Deleting the host veth takes its peer in the pod and the /32 route with it.
        host.request([nl.link_delete(hname), *made])

    # -- DEL -----------------------------------------------------------------------------

    def teardown(
        self,
        key: AttachmentKey,
        ip: IPv4 | None,
        table: int | None = None,
        *,
        keep_link: bool = False,
        ip6: IPv6 | None = None,
        table6: int | None = None,
        ip6_link_mac: str = "",
    ) -> None:
        """Remove what ``setup`` made; anything already gone is fine (idempotent).

        ``ip``/``ip6`` are None when the IPAM has no allocation of that family for
        ``key`` (any more: a repeated DEL): then nothing of that family is removed but
        the veth, never rules or proxy entries an address's next owner may hold.
        ``ip6_link_mac`` names the ENI link of ``ip6``'s proxy entry; without it (or
        when that link is gone) the entry is looked up on every link.

        ``keep_link``: cut the pod off (host veth down, its /32 route and rules gone)
        but leave destroying the veth to ``remove_link``. Destroying a veth waits for
        an RCU grace period in the kernel (~15 ms measured, far more than the rest of
        DEL), which the caller can then spend off the request path.
        """
        hname = self.host_ifname(key)
        batch = [nl.link_down(hname) if keep_link else nl.link_delete(hname)]
        for addr, addr_table in ((ip, table), (ip6, table6)):
            if addr is None:
                continue
            a = str(addr)
            if keep_link:  # otherwise the route goes with the link
                batch.append(nl.route(a, nl.host_len(a), 0, delete=True))
            batch.append(nl.rule(PRIO_TO_POD, dst=a, table=MAIN_TABLE, delete=True))
            batch.append(nl.rule(PRIO_FROM_POD, src=a, table=addr_table or 0, delete=True))
        with self._host() as host:
            if ip6 is not None:
                batch += [
                    nl.proxy_neighbour(index, str(ip6), delete=True)
                    for index in self._proxy_links(host, str(ip6), ip6_link_mac)
                ]
            host.check(batch, f"removing the pod network of {key}", ok=(errno.ENODEV, errno.ENOENT, errno.ESRCH))

    def _proxy_links(self, host: nl.Rtnl, ip6: str, mac: str) -> list[int]:
        """The links whose proxy entry of ``ip6`` to delete: the ENI link of ``mac``, or
        (no MAC, or its link gone) every link holding one, from a dump."""
        if mac:
            try:
                return [self.ndp_link(host, mac)[1]]
            except PodNetworkError as e:
                if e.errno != errno.ENODEV:
                    raise
        return [int(n["ifindex"]) for n in host.dump(*nl.dump_request("proxy")) if _attr(n, "NDA_DST") == ip6]

    def remove_link(self, key: AttachmentKey) -> None:
        """Destroy the host veth of ``key`` (and with it the pod's end); idempotent."""
        with self._host() as host:
            host.check([nl.link_delete(self.host_ifname(key))], f"removing the veth of {key}", ok=(errno.ENODEV,))

    # -- CHECK ---------------------------------------------------------------------------

    def check(self, spec: PodSpec) -> None:
        """PodNetworkError naming the first thing that differs from what ADD made."""
        hname = self.host_ifname(spec.key)
        hmac, _ = veth_macs(spec.key)
        ips = [str(a) for a in (spec.ip, spec.ip6) if a is not None]
        family = _dump_family(spec)
        pod_fd = self.open_pod_netns(spec.netns)
        try:
            with nl.Rtnl(pod_fd) as pod:
                links = {_attr(m, "IFLA_IFNAME"): m for m in pod.dump(*nl.dump_request("link"))}
                itf = links.get(spec.key.ifname)
                _expect(itf is not None, f"{spec.key.ifname} missing in {spec.netns}")
                assert itf is not None
                pidx = itf["index"]
                _expect(bool(itf["flags"] & nl.IFF_UP), f"{spec.key.ifname} is down")
                _expect(_attr(itf, "IFLA_MTU") == spec.mtu, f"{spec.key.ifname} mtu {_attr(itf, 'IFLA_MTU')} != {spec.mtu}")
                addrs = pod.dump(*nl.dump_request("addr", family))
                for ip in ips:
                    _expect_address(addrs, pidx, ip, nl.host_len(ip), spec.key.ifname)
                routes = _main_routes(pod.dump(*nl.dump_request("route", family)))
                neigh = pod.dump(*nl.dump_request("neigh", family))
                gateways = []
                if spec.ip is not None:
                    _expect(
                        any(_attr(r, "RTA_DST") == POD_GATEWAY and r["dst_len"] == 32 and _attr(r, "RTA_OIF") == pidx for r in routes),
                        f"route {POD_GATEWAY} dev {spec.key.ifname} missing",
                    )
                    gateways.append(POD_GATEWAY)
                if spec.ip6 is not None:
                    gateways.append(POD_GATEWAY6)
                for gw in gateways:
                    _expect(
                        any(
                            r["dst_len"] == 0 and _attr(r, "RTA_GATEWAY") == gw and _attr(r, "RTA_OIF") in (pidx, None)
                            for r in routes
                        ),
                        f"default route via {gw} missing",
                    )
                    _expect(
                        any(
                            n["ifindex"] == pidx
                            and _attr(n, "NDA_DST") == gw
                            and str(_attr(n, "NDA_LLADDR")).lower() == hmac
                            and n["state"] & nl.NUD_PERMANENT
                            for n in neigh
                        ),
                        f"permanent neighbour {gw} -> {hmac} missing",
                    )
        finally:
            os.close(pod_fd)
        with self._host() as host:
            hidx = host.link_index(hname)
            _expect(hidx is not None, f"host veth {hname} missing")
            routes = _main_routes(host.dump(*nl.dump_request("route", family)))
            rules = host.dump(*nl.dump_request("rule", family))
            for addr, table in ((spec.ip, spec.table), (spec.ip6, spec.table6)):
                if addr is None:
                    continue
                a, length = str(addr), nl.host_len(str(addr))
                _expect(
                    any(_attr(r, "RTA_DST") == a and r["dst_len"] == length and _attr(r, "RTA_OIF") == hidx for r in routes),
                    f"host route {a}/{length} dev {hname} missing",
                )
                _expect(
                    any(_rule_is(r, PRIO_TO_POD, "FRA_DST", a, MAIN_TABLE) for r in rules),
                    f"rule to {a} lookup main missing",
                )
                if table is not None:
                    _expect(
                        any(_rule_is(r, PRIO_FROM_POD, "FRA_SRC", a, table) for r in rules),
                        f"rule from {a} lookup {table} missing",
                    )
            if spec.ip6 is not None:
                assert hidx is not None
                self._check_host6(host, hidx, hname, spec)

    def _check_host6(self, host: nl.Rtnl, hidx: int, hname: str, spec: PodSpec) -> None:
        """The host veth's gateway address and the pod's NDP proxy entry."""
        ip6 = str(spec.ip6)
        addrs = host.dump(*nl.dump_request("addr", nl.AF_INET6))
        _expect_address(addrs, hidx, POD_GATEWAY6, GATEWAY6_PREFIXLEN, hname)
        try:
            link, index = self.ndp_link(host, spec.ip6_link_mac)
        except PodNetworkError as e:
            raise PodNetworkError(str(e), errno=errno.ENOENT) from e
        _expect(
            any(
                n["ifindex"] == index and _attr(n, "NDA_DST") == ip6
                for n in host.dump(*nl.dump_request("proxy"))
            ),
            f"NDP proxy entry {ip6} dev {link} missing",
        )

    # -- convergence -----------------------------------------------------------------------

    def remove_leftovers(self, unassigned: Collection[IPv4 | IPv6]) -> int:
        """Delete pod rules (priorities 512/1536) and NDP proxy entries of addresses no
        pod holds and nothing routes; returns how many were removed.

        ``unassigned``: addresses (either family) the checkpoint says are free, cooling
        down or released. Only those: an address the agent knows nothing about (no
        checkpoint, or not a pool address) may be in use. And never one with a host
        route (``/32``, ``/128``) in the main table: an interface routes it, which
        outranks the checkpoint (its ADD will refuse the address until the runtime's
        DEL of that sandbox removes the interface).
        """
        if not unassigned:
            return 0
        strs = {str(ip) for ip in unassigned}
        v6 = any(":" in s for s in strs)
        family = (nl.AF_UNSPEC if any(":" not in s for s in strs) else nl.AF_INET6) if v6 else nl.AF_INET
        return self._remove_unrouted(family, strs.__contains__)

    def remove_leftovers6(self, prefixes: Collection[IPv6Net], assigned: Collection[IPv6]) -> int:
        """Delete IPv6 pod rules (priorities 512/1536) and NDP proxy entries of addresses
        in ``prefixes`` (the node's /80s) that are not in ``assigned`` and that nothing
        routes; returns how many were removed.

        The IPv6 pool cannot list its free addresses (2**48 per /80, a cursor instead
        of a free set), so the leftovers are found the other way round: every entry in
        the node's /80s is one of the agent's, and one no pod holds is a leftover (of an
        agent killed mid-ADD or mid-DEL, or of a DEL that never came because the sandbox
        vanished while the agent was down). Entries outside the /80s are never touched,
        and a routed address outranks the checkpoint, as in ``remove_leftovers``.
        """
        if not prefixes:
            return 0
        nets = tuple(prefixes)
        held = {str(ip) for ip in assigned}

        def leftover(addr: str) -> bool:
            if addr in held:
                return False
            ip = ipaddress.ip_address(addr)
            return ip.version == 6 and any(ip in net for net in nets)

        return self._remove_unrouted(nl.AF_INET6, leftover)

    def _remove_unrouted(self, family: int, leftover: Callable[[str], bool]) -> int:
        """Delete pod rules and NDP proxy entries of the host addresses ``leftover``
        accepts, unless the main table holds a host route of the address."""
        stale: list[nl.Request] = []
        with self._host() as host:
            routed = {
                _attr(r, "RTA_DST")
                for r in _main_routes(host.dump(*nl.dump_request("route", family)))
                if _attr(r, "RTA_DST") and r["dst_len"] == nl.host_len(_attr(r, "RTA_DST"))
            }

            def wanted(addr: Any) -> bool:
                return bool(addr) and addr not in routed and leftover(addr)

            for r in host.dump(*nl.dump_request("rule", family)):
                prio = _attr(r, "FRA_PRIORITY")
                table = _attr(r, "FRA_TABLE") or r["table"]
                dst, src = _attr(r, "FRA_DST"), _attr(r, "FRA_SRC")
                if prio == PRIO_TO_POD and wanted(dst) and r["dst_len"] == nl.host_len(dst):
                    stale.append(nl.rule(prio, dst=dst, table=table, delete=True))
                elif prio == PRIO_FROM_POD and wanted(src) and r["src_len"] == nl.host_len(src):
                    stale.append(nl.rule(prio, src=src, table=table, delete=True))
            if family != nl.AF_INET:
                for n in host.dump(*nl.dump_request("proxy")):
                    if wanted(_attr(n, "NDA_DST")):
                        stale.append(nl.proxy_neighbour(int(n["ifindex"]), _attr(n, "NDA_DST"), delete=True))
            host.check(stale, "removing leftover pod rules and NDP proxy entries", ok=(errno.ENOENT,))
        return len(stale)


def _pod_requests(pidx: int, spec: PodSpec, hmac: str) -> list[nl.Request]:
    """The pod side, in one batch: addresses, the link up, then what needs it up
    (IPv6 refuses routes on a down link)."""
    reqs = [nl.address(pidx, str(a)) for a in (spec.ip, spec.ip6) if a is not None]
    reqs.append(nl.link_up(pidx))
    if spec.ip is not None:
        reqs += [
            nl.route(POD_GATEWAY, 32, pidx),
            nl.route("0.0.0.0", 0, pidx, gateway=POD_GATEWAY),
            nl.permanent_neighbour(pidx, POD_GATEWAY, hmac),
        ]
    if spec.ip6 is not None:
        reqs += [
            nl.route("::", 0, pidx, gateway=POD_GATEWAY6),
            nl.permanent_neighbour(pidx, POD_GATEWAY6, hmac),
        ]
    return reqs


def _dump_family(spec: PodSpec) -> int:
    """The family to dump for CHECK: the pod's one family, or both for a dual pod."""
    if spec.ip6 is None:
        return nl.AF_INET
    return nl.AF_INET6 if spec.ip is None else nl.AF_UNSPEC


def _expect_address(addrs: list[Any], index: int, ip: str, prefixlen: int, ifname: str) -> None:
    """``ip/prefixlen`` on link ``index``, and usable (not tentative, DAD not failed)."""
    found = [a for a in addrs if a["index"] == index and a["prefixlen"] == prefixlen and _address_of(a) == ip]
    _expect(bool(found), f"{ip}/{prefixlen} missing on {ifname}")
    flags = int(_attr(found[0], "IFA_FLAGS") or found[0]["flags"])
    _expect(not flags & (nl.IFA_F_TENTATIVE | nl.IFA_F_DADFAILED), f"{ip}/{prefixlen} on {ifname} is not usable (tentative)")


def _address_of(a: Any) -> Any:
    # IPv4 addresses carry IFA_LOCAL; IPv6 ones IFA_ADDRESS only.
    return _attr(a, "IFA_LOCAL") or _attr(a, "IFA_ADDRESS")


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise PodNetworkError(what, errno=errno.ENOENT)


def _main_routes(routes: list[Any]) -> list[Any]:
    return [r for r in routes if (_attr(r, "RTA_TABLE") or r["table"]) == MAIN_TABLE]


def _rule_is(r: Any, priority: int, attr: str, ip: str, table: int) -> bool:
    return bool(
        _attr(r, "FRA_PRIORITY") == priority
        and _attr(r, attr) == ip
        and (_attr(r, "FRA_TABLE") or r["table"]) == table
    )


def _write_sysctl(ns_fd: int | None, name: str, value: str) -> None:
    """Write /proc/sys/<name> in the namespace ``ns_fd`` (None: ours), unless it holds
    ``value`` already: the DaemonSet's agent sees a read-only /proc/sys, where the init
    container (``vpcnet install-cni --host-sysctls``) has set what the node needs.

    /proc/sys/net resolves against the opening thread's namespace, so a short-lived
    thread enters the namespace to open it (setns is per thread).
    """
    failure: list[OSError] = []

    def write() -> None:
        try:
            if ns_fd is not None:
                pr_netns.setns(ns_fd)
            with open(f"/proc/sys/{name}") as current:
                if current.read().strip() == value.strip():
                    return
            with open(f"/proc/sys/{name}", "w") as f:
                f.write(value)
        except OSError as e:
            failure.append(e)

    t = threading.Thread(target=write, name="netns-sysctl")
    t.start()
    t.join()
    if failure:
        raise PodNetworkError(f"sysctl {name}={value}: {failure[0]}", errno=failure[0].errno) from failure[0]
