"""Converge the node's host network to a ``HostPlan`` (pyroute2 + the iptables binaries).

Everything here is idempotent: each ``ensure_*`` reads the kernel's state first and
writes only the difference, so re-running it (every resync, after an agent restart)
changes nothing on a configured host. ``remove_*`` calls succeed when the thing is
already gone.

The "host" is the agent's own network namespace or, in simulation, the named
namespace ``AgentSettings.host_netns``: netlink sockets are opened inside it with
``flags=0`` (a wrong name fails rather than creating an empty namespace) and the
iptables/sysctl binaries run through ``ip netns exec <ns>`` argv lists, never a shell.

IPv6: the ENI tables' routes are converged for both families; IPv6 has no node rules
and no NAT (ip6tables is never touched). ``ipv6_default_gateway`` reads the gateway of
the node's own IPv6 default route, which the per-ENI IPv6 default routes reuse.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import shlex
import socket
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vpcnet.agent.hostplan import (
    IMDS_CHAIN,
    SNAT_CHAIN,
    HostPlan,
    IptablesChain,
    RouteSpec,
    RuleSpec,
    chain_rules_from_save,
    expected_save_lines,
    render_restore,
)
from vpcnet.agent.routing import MAIN_TABLE, NODE_RULE_PRIORITIES, is_eni_table
from vpcnet.domain import IPv6
from vpcnet.errors import HostNetworkError

log = logging.getLogger(__name__)

RT_SCOPE_LINK = 253
RT_PROTO_KERNEL = 2
RT_PROTO_STATIC = 4
RTN_UNICAST = 1
_OUR_CHAINS = {"nat": (SNAT_CHAIN, IMDS_CHAIN)}
_CHAIN_HOOKS = {SNAT_CHAIN: "POSTROUTING", IMDS_CHAIN: "PREROUTING"}
_IPTABLES_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class LinkInfo:
    index: int
    ifname: str
    mac: str
    mtu: int
    up: bool


@dataclass(slots=True)
class ConvergeReport:
    """What one ``HostNetwork.ensure`` pass changed (empty on a converged host)."""

    changes: list[str] = field(default_factory=list)

    def add(self, what: str) -> None:
        log.info("host network: %s", what)
        self.changes.append(what)


class HostNetwork:
    def __init__(self, netns: str | None = None, *, veth_prefix: str = "vpc") -> None:
        self.netns = netns
        self.veth_prefix = veth_prefix
        self._sysctls_applied: dict[str, str] = {}

    # -- netlink access ---------------------------------------------------------

    @contextmanager
    def _ipr(self) -> Iterator[IPRoute]:
        # A fresh socket per pass: pyroute2's sync API is not safe to share across threads.
        try:
            ipr = IPRoute(netns=self.netns, flags=0) if self.netns else IPRoute()
        except OSError as e:
            raise HostNetworkError(f"cannot open netlink in netns {self.netns!r}: {e}") from e
        try:
            yield ipr
        except NetlinkError as e:
            raise HostNetworkError(f"netlink error {e.code}: {e}") from e
        finally:
            ipr.close()

    def links_by_mac(self) -> dict[str, LinkInfo]:
        """Links by MAC (lower case). Pod veths are skipped so ENIs win any MAC clash."""
        with self._ipr() as ipr:
            return _links_by_mac(ipr, self.veth_prefix)

    def ipv6_default_gateway(self) -> IPv6 | None:
        """The gateway of the node's IPv6 default route in the main table (on AWS the
        VPC router's link-local address, learned by RA); None when there is none."""
        with self._ipr() as ipr:
            for msg in ipr.route("dump", family=socket.AF_INET6):
                table = int(msg.get("RTA_TABLE") or msg["table"])
                if table != MAIN_TABLE or msg["dst_len"] != 0 or msg["type"] != RTN_UNICAST:
                    continue
                # ECMP (several RA routers): the first hop's gateway.
                hops = [msg, *(msg.get("RTA_MULTIPATH") or ())]
                for gateway in (hop.get("RTA_GATEWAY") for hop in hops):
                    if gateway:
                        return ipaddress.IPv6Address(gateway)
        return None

    # -- converge -----------------------------------------------------------------

    def ensure(self, plan: HostPlan) -> ConvergeReport:
        """Converge links, routes, rules, sysctls and iptables to ``plan``."""
        report = ConvergeReport()
        with self._ipr() as ipr:
            links = {li.ifname: li for li in _links_by_mac(ipr, self.veth_prefix).values()}
            for spec in plan.links:
                link = links.get(spec.ifname)
                if link is None:
                    raise HostNetworkError(f"link {spec.ifname} of {spec.eni.eni_id} vanished")
                _ensure_link(ipr, link, spec.set_mtu, report)
                if spec.address is not None:
                    _ensure_address(ipr, link, spec.address, report)
            _ensure_routes(ipr, plan.routes, links, plan.tables, report)
            _ensure_rules(ipr, plan.rules, report)
        self.ensure_sysctls(plan.sysctls, report)
        self.ensure_iptables(plan.chains, report)
        return report

    def ensure_sysctls(self, values: dict[str, str], report: ConvergeReport) -> None:
        todo = {k: v for k, v in values.items() if self._sysctls_applied.get(k) != v}
        if not todo:
            return
        current = self._read_sysctls(list(todo))
        self._sysctls_applied.update({k: v for k, v in todo.items() if current.get(k) == v})
        todo = {k: v for k, v in todo.items() if current.get(k) != v}
        if not todo:
            return
        if self.netns is None:
            for key, value in todo.items():
                try:
                    Path("/proc/sys", key).write_text(value)
                except OSError as e:
                    raise HostNetworkError(f"sysctl {key}={value}: {e}") from e
        else:
            self._run(["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in todo.items())])
        self._sysctls_applied.update(todo)
        report.add("sysctl " + " ".join(f"{k}={v}" for k, v in sorted(todo.items())))

    def _read_sysctls(self, keys: list[str]) -> dict[str, str]:
        if self.netns is None:
            out = {}
            for key in keys:
                try:
                    out[key] = Path("/proc/sys", key).read_text().strip()
                except OSError:
                    continue  # e.g. the link is gone; the write reports the error
            return out
        try:
            values = self._run(["sysctl", "-n", *keys]).splitlines()
        except HostNetworkError:
            return {}
        return dict(zip(keys, (v.strip() for v in values), strict=False)) if len(values) == len(keys) else {}

    def ensure_iptables(self, chains: Sequence[IptablesChain], report: ConvergeReport) -> None:
        wanted = {c.chain: c for c in chains}
        for table, names in _OUR_CHAINS.items():
            save = self._run(["iptables-save", "-t", table])
            stale = [n for n in names if n not in wanted and chain_rules_from_save(save, n) is not None]
            for name in stale:
                self._remove_chain(table, name, save)
                report.add(f"removed iptables chain {table}/{name}")
            mine = [c for c in chains if c.table == table]
            if any(chain_rules_from_save(save, c.chain) != expected_save_lines(c) for c in mine):
                self._run(
                    ["iptables-restore", "-w", "5", "--noflush"],
                    stdin=render_restore(mine, table),
                )
                report.add(f"rebuilt iptables chains {table}/{','.join(c.chain for c in mine)}")
            for c in mine:
                if not self._has_rule(table, c.hook, c.jump):
                    self._run(["iptables", "-w", "5", "-t", table, "-A", c.hook, *c.jump])
                    report.add(f"iptables jump {table}/{c.hook} -> {c.chain}")

    def remove_all(self) -> ConvergeReport:
        """Unprogram everything node-wide that vpcnet added (uninstall, tests)."""
        report = ConvergeReport()
        with self._ipr() as ipr:
            _ensure_routes(ipr, (), {}, frozenset(), report)
            _ensure_rules(ipr, (), report)
        self.ensure_iptables((), report)
        return report

    # -- iptables helpers ----------------------------------------------------------

    def _has_rule(self, table: str, chain: str, args: Sequence[str]) -> bool:
        try:
            self._run(["iptables", "-w", "5", "-t", table, "-C", chain, *args])
        except HostNetworkError:
            return False
        return True

    def _remove_chain(self, table: str, name: str, save: str) -> None:
        hook = _CHAIN_HOOKS[name]
        for line in save.splitlines():
            # Delete every jump to the chain (whatever its matches) before the chain.
            if line.startswith(f"-A {hook} ") and line.endswith(f"-j {name}"):
                args = _split_save_rule(line)[2:]
                self._run(["iptables", "-w", "5", "-t", table, "-D", hook, *args])
        self._run(["iptables", "-w", "5", "-t", table, "-F", name])
        self._run(["iptables", "-w", "5", "-t", table, "-X", name])

    def _run(self, argv: list[str], stdin: str | None = None) -> str:
        full = ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv
        try:
            proc = subprocess.run(
                full,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=_IPTABLES_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise HostNetworkError(f"{argv[0]} failed to run: {e}") from e
        if proc.returncode != 0:
            raise HostNetworkError(
                f"{' '.join(argv[:4])} exited {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc.stdout


# -- netlink helpers (module level: each takes the open socket) ------------------


def _links_by_mac(ipr: IPRoute, veth_prefix: str) -> dict[str, LinkInfo]:
    out: dict[str, LinkInfo] = {}
    for msg in ipr.get_links():
        mac = (msg.get("IFLA_ADDRESS") or "").lower()
        name = msg.get("IFLA_IFNAME") or ""
        if not mac or mac == "00:00:00:00:00:00":
            continue
        info = LinkInfo(
            index=int(msg["index"]),
            ifname=name,
            mac=mac,
            mtu=int(msg.get("IFLA_MTU") or 0),
            up=bool(msg["flags"] & 1),
        )
        if mac in out and name.startswith(veth_prefix):
            continue
        out[mac] = info
    return out


def _ensure_link(ipr: IPRoute, link: LinkInfo, mtu: int | None, report: ConvergeReport) -> None:
    changes: dict[str, Any] = {}
    if mtu is not None and link.mtu != mtu:
        changes["mtu"] = mtu
    if not link.up:
        changes["state"] = "up"
    if changes:
        ipr.link("set", index=link.index, **changes)
        report.add(f"link {link.ifname} {changes}")


def _ensure_address(
    ipr: IPRoute, link: LinkInfo, addr: ipaddress.IPv4Interface, report: ConvergeReport
) -> None:
    have = {
        (a.get("IFA_ADDRESS"), int(a["prefixlen"]))
        for a in ipr.get_addr(index=link.index, family=socket.AF_INET)
    }
    if (str(addr.ip), addr.network.prefixlen) not in have:
        try:
            ipr.addr("add", index=link.index, address=str(addr.ip), prefixlen=addr.network.prefixlen)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise
        report.add(f"address {addr} on {link.ifname}")
    # The kernel adds a connected route for the subnet in main; it would pull traffic for
    # the subnet out of this secondary ENI. Pods of this ENI reach the subnet via its table.
    try:
        ipr.route(
            "del",
            dst=str(addr.network),
            oif=link.index,
            table=MAIN_TABLE,
            proto=RT_PROTO_KERNEL,
            scope=RT_SCOPE_LINK,
        )
        report.add(f"removed connected route {addr.network} dev {link.ifname} from main")
    except NetlinkError as e:
        if e.code != errno.ESRCH:
            raise


def _route_key(
    table: int, dst: ipaddress.IPv4Network | ipaddress.IPv6Network, oif: int, gw: str | None
) -> tuple[Any, ...]:
    return (table, str(dst), oif, gw)


def _ensure_routes(
    ipr: IPRoute,
    routes: Sequence[RouteSpec],
    links: dict[str, LinkInfo],
    tables: frozenset[int],
    report: ConvergeReport,
) -> None:
    wanted: dict[tuple[Any, ...], RouteSpec] = {}
    for r in routes:
        wanted[_route_key(r.table, r.dst, links[r.oif].index, _s(r.gateway))] = r
    have: dict[tuple[Any, ...], Any] = {}
    for family, unspecified in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        for msg in ipr.route("dump", family=family):
            table = int(msg.get("RTA_TABLE") or msg["table"])
            if not is_eni_table(table) or msg["type"] != RTN_UNICAST:
                continue
            dst = ipaddress.ip_network(f"{msg.get('RTA_DST') or unspecified}/{msg['dst_len']}")
            have[_route_key(table, dst, int(msg.get("RTA_OIF") or 0), msg.get("RTA_GATEWAY"))] = msg
    for key, msg in have.items():
        if key not in wanted:
            table, dst, oif, gw = key
            kwargs: dict[str, Any] = {"dst": dst, "table": table, "oif": oif, "family": _family(dst)}
            if gw:
                kwargs["gateway"] = gw
            try:
                ipr.route("del", proto=msg["proto"], scope=msg["scope"], **kwargs)
            except NetlinkError as e:
                if e.code != errno.ESRCH:
                    raise
            what = "stale table" if table not in tables else "stale route in table"
            report.add(f"removed {what} {table}: {dst} via {gw or 'link'} oif {oif}")
    # Scope-link gateway routes first: the default route's gateway must be reachable.
    for key, r in sorted(wanted.items(), key=lambda kv: kv[1].gateway is not None):
        if key in have:
            continue
        kwargs = {
            "dst": str(r.dst),
            "table": r.table,
            "oif": links[r.oif].index,
            "proto": RT_PROTO_STATIC,
            "family": _family(str(r.dst)),
        }
        if r.gateway is None:
            kwargs["scope"] = RT_SCOPE_LINK
        else:
            kwargs["gateway"] = str(r.gateway)
        ipr.route("replace", **kwargs)
        report.add(f"route table {r.table}: {r.dst} via {r.gateway or 'link'} dev {r.oif}")


def _rule_from_msg(msg: Any) -> RuleSpec | None:
    prio = msg.get("FRA_PRIORITY")
    if prio not in NODE_RULE_PRIORITIES:
        return None
    action = {1: "lookup", 2: "goto", 3: "nop"}.get(int(msg["action"]), f"action{msg['action']}")
    dst = msg.get("FRA_DST")
    goto = msg.get("FRA_GOTO")
    return RuleSpec(
        priority=int(prio),
        action=action,
        dst=ipaddress.IPv4Network(f"{dst}/{msg['dst_len']}") if dst else None,
        table=int(msg.get("FRA_TABLE") or msg["table"]) if action == "lookup" else None,
        goto=int(goto) if action == "goto" and goto is not None else None,
    )


def _rule_kwargs(rule: RuleSpec) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"family": socket.AF_INET, "priority": rule.priority}
    if rule.dst is not None:
        kwargs.update(dst=str(rule.dst.network_address), dst_len=rule.dst.prefixlen)
    if rule.action == "lookup":
        kwargs.update(table=rule.table, action="to_tbl")
    elif rule.action == "goto":
        kwargs.update(action="goto", goto=rule.goto)
    else:
        kwargs.update(action="nop")
    return kwargs


def _ensure_rules(ipr: IPRoute, rules: Sequence[RuleSpec], report: ConvergeReport) -> None:
    have = [r for r in (_rule_from_msg(m) for m in ipr.get_rules(family=socket.AF_INET)) if r]
    wanted = set(rules)
    for rule in have:
        if rule not in wanted:
            try:
                ipr.rule("del", **_rule_kwargs(rule))
            except NetlinkError as e:
                if e.code not in (errno.ENOENT, errno.ESRCH):
                    raise
            report.add(f"removed rule {rule.describe()}")
    # The anchor first, so gotos resolve as soon as they exist.
    for rule in sorted(wanted - set(have), key=lambda r: r.action != "nop"):
        try:
            ipr.rule("add", **_rule_kwargs(rule))
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise
        report.add(f"rule {rule.describe()}")


def _split_save_rule(line: str) -> list[str]:
    return shlex.split(line)


def _family(dst: str) -> int:
    return socket.AF_INET6 if ":" in dst else socket.AF_INET


def _s(ip: object | None) -> str | None:
    return None if ip is None else str(ip)
