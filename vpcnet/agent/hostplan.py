"""What the node's host network must look like, as pure data (no I/O).

``plan_host`` turns the node's ENIs (from Redis, cross-checked with instance metadata)
and the agent settings into the desired routes, policy rules, sysctls and iptables
chains. ``vpcnet.agent.hostnet`` then converges the kernel to it.

Routing (the pod half lives in ``vpcnet.agent.podnet``):

- every non-primary ENI gets its route table (``vpcnet.agent.routing.eni_table``, the
  tables and priorities both halves share) holding a scope-link route to its subnet
  gateway and a default route via that gateway; pods whose IP belongs to that ENI are
  sent there by ``from <pod> lookup <table>`` (priority 1536); the primary ENI's pods
  use the main table.
- with SNAT on, traffic leaving the VPC must leave by the primary ENI (the source
  check of a secondary ENI would drop a packet carrying the primary IP): rules at
  1024 send destinations inside the VPC (and the SNAT exclusions) on to the pod
  rules (``goto 1535``, a ``nop`` anchor just before them), and 1025 sends every
  other destination to the main table. Rules are matched after DNAT, so a pod's
  traffic to a Service that kube-proxy rewrites to a VPC address still leaves by
  the pod's own ENI. This is the AWS VPC CNI's ``not to <vpc> lookup main`` rule,
  generalised to several CIDRs.

IPv6 (ENIs holding /80 prefixes, ``EniRecord.ipv6_prefixes``; design point 5 of #14):

- IPv6 forwarding on (``net.ipv6.conf.all.forwarding=1``). Forwarding makes the kernel
  ignore router advertisements on links with ``accept_ra=1``, so the primary ENI's
  link (the one learning the node's default route by RA on AWS) gets ``accept_ra=2``,
  written before forwarding.
- ``proxy_ndp=1`` on every ENI link holding /80s: the VPC router resolves pod
  addresses by NDP, and the node answers for them (``podnet`` adds the entries),
  without the kernel's random delay (``proxy_delay=0``).
- a non-primary ENI with /80s gets an IPv6 default route in its table, via the
  link-local gateway of the node's own IPv6 default route (``ipv6_gateway``: read
  from the main table by ``hostnet``); its pods' ``from`` rules point there. Without
  an IPv6 default route no IPv6 node can work: ``plan_host`` refuses, naming it.
- no NAT at all for IPv6 (no ip6tables chain); IPv4 SNAT as above.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from vpcnet.agent.routing import (
    MAIN_TABLE,
    PRIO_LEAVE_VPC,
    PRIO_POD_ANCHOR,
    PRIO_VPC_GOTO,
    eni_table,
)
from vpcnet.domain import EniRecord, IPv4, IPv4Net, IPv6, IPv6Net
from vpcnet.errors import HostNetworkError
from vpcnet.host_sysctls import (
    ACCEPT_RA_WITH_FORWARDING,
    FORWARDING_ON,
    IP_FORWARD,
    IPV6_FORWARDING,
    PROXY_DELAY_NONE,
    PROXY_NDP_ON,
    RP_FILTER_LOOSE,
    accept_ra,
    proxy_delay,
    proxy_ndp,
    rp_filter,
)

SNAT_CHAIN = "VPCNET-SNAT"
IMDS_CHAIN = "VPCNET-IMDS"
IMDS_ADDRESS = "169.254.169.254"


@dataclass(frozen=True, slots=True)
class RouteSpec:
    table: int
    dst: IPv4Net | IPv6Net  # 0.0.0.0/0 or ::/0 for the default route
    oif: str  # link name; resolved to an index by the adapter
    gateway: IPv4 | IPv6 | None = None  # None: scope link (directly reachable)


@dataclass(frozen=True, slots=True, order=True)
class RuleSpec:
    priority: int
    action: str  # "lookup" | "goto" | "nop"
    dst: IPv4Net | None = None
    table: int | None = None
    goto: int | None = None

    def describe(self) -> str:
        parts = [f"{self.priority}:"]
        if self.dst is not None:
            parts.append(f"to {self.dst}")
        if self.action == "lookup":
            parts.append(f"lookup {self.table}")
        elif self.action == "goto":
            parts.append(f"goto {self.goto}")
        else:
            parts.append(self.action)
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class EniLinkSpec:
    """One ENI's link: found by MAC, brought up, addressed (non-primary) and routed."""

    eni: EniRecord
    ifname: str
    set_mtu: int | None  # the primary ENI's MTU belongs to the OS; secondaries get ours
    address: ipaddress.IPv4Interface | None  # primary IP / subnet length, secondaries only
    table: int | None
    # The node's IPv6 default gateway (link-local), set when this non-primary ENI holds
    # /80s: its table then routes the pods' IPv6 traffic too.
    gateway6: IPv6 | None = None

    @property
    def routes(self) -> tuple[RouteSpec, ...]:
        if self.table is None:
            return ()
        gw = self.eni.gateway
        routes = [
            RouteSpec(self.table, ipaddress.IPv4Network(f"{gw}/32"), self.ifname),
            RouteSpec(self.table, ipaddress.IPv4Network("0.0.0.0/0"), self.ifname, gw),
        ]
        if self.gateway6 is not None:
            routes.append(RouteSpec(self.table, ipaddress.IPv6Network("::/0"), self.ifname, self.gateway6))
        return tuple(routes)


@dataclass(frozen=True, slots=True)
class IptablesChain:
    table: str  # "nat"
    chain: str
    hook: str  # built-in chain jumping to it
    jump_matches: tuple[str, ...]  # match arguments of the jump rule
    rules: tuple[tuple[str, ...], ...]  # each rule's arguments after ``-A <chain>``

    @property
    def jump(self) -> tuple[str, ...]:
        return (*self.jump_matches, "-j", self.chain)


@dataclass(frozen=True, slots=True)
class HostPlan:
    links: tuple[EniLinkSpec, ...]
    rules: tuple[RuleSpec, ...]  # node rules, priorities in routing.NODE_RULE_PRIORITIES
    sysctls: dict[str, str] = field(default_factory=dict)  # "net/ipv4/..." -> value
    chains: tuple[IptablesChain, ...] = ()  # present chains (others of ours are removed)

    @property
    def routes(self) -> tuple[RouteSpec, ...]:
        return tuple(r for link in self.links for r in link.routes)

    @property
    def tables(self) -> frozenset[int]:
        return frozenset(link.table for link in self.links if link.table is not None)


def plan_rules(snat: bool, no_snat_cidrs: Sequence[IPv4Net]) -> tuple[RuleSpec, ...]:
    """The per-node rules: nothing without SNAT, else the VPC split described above."""
    if not snat:
        return ()
    rules = [
        RuleSpec(PRIO_VPC_GOTO, "goto", dst=cidr, goto=PRIO_POD_ANCHOR)
        for cidr in _collapse(no_snat_cidrs)
    ]
    rules.append(RuleSpec(PRIO_LEAVE_VPC, "lookup", table=MAIN_TABLE))
    rules.append(RuleSpec(PRIO_POD_ANCHOR, "nop"))
    return tuple(sorted(rules))


def plan_snat_chain(
    primary_ip: IPv4, no_snat_cidrs: Sequence[IPv4Net], random_fully: bool = True
) -> IptablesChain:
    """SNAT to the primary IP whatever leaves the VPC and is not excluded."""
    rules: list[tuple[str, ...]] = [
        ("-d", str(cidr), "-j", "RETURN") for cidr in _collapse(no_snat_cidrs)
    ]
    snat = ("-j", "SNAT", "--to-source", str(primary_ip))
    rules.append(snat + (("--random-fully",) if random_fully else ()))
    return IptablesChain(
        table="nat",
        chain=SNAT_CHAIN,
        hook="POSTROUTING",
        jump_matches=(
            "-m", "comment", "--comment", "vpcnet: SNAT traffic leaving the VPC",
            "-m", "addrtype", "!", "--dst-type", "LOCAL",
        ),
        rules=tuple(rules),
    )


def plan_imds_chain(primary_ip: IPv4, port: int, veth_prefix: str) -> IptablesChain:
    """Pods' metadata calls go to a local proxy (kube2iam/kiam style) on ``port``."""
    return IptablesChain(
        table="nat",
        chain=IMDS_CHAIN,
        hook="PREROUTING",
        jump_matches=("-m", "comment", "--comment", "vpcnet: pod metadata redirect"),
        rules=(
            (
                "-d", f"{IMDS_ADDRESS}/32", "-i", f"{veth_prefix}+",
                "-p", "tcp", "-m", "tcp", "--dport", "80",
                "-j", "DNAT", "--to-destination", f"{primary_ip}:{port}",
            ),
        ),
    )


def plan_host(
    enis: Iterable[EniRecord],
    link_names: dict[str, str],
    *,
    primary_ip: IPv4,
    vpc_cidrs: Sequence[IPv4Net],
    snat: bool,
    snat_exclusions: Sequence[IPv4Net] = (),
    mtu: int = 9001,
    veth_prefix: str = "vpc",
    imds_redirect_port: int = 0,
    ipv6_gateway: IPv6 | None = None,
) -> HostPlan:
    """The desired host state for the ENIs whose link was found (``link_names``: MAC -> name).

    ENIs without a link yet (still attaching) are left out; the caller retries them.
    ``ipv6_gateway``: the gateway of the node's IPv6 default route (main table), None
    when it has none; needed as soon as an ENI holds /80 prefixes.
    """
    if snat and not vpc_cidrs:
        raise ValueError("SNAT needs the VPC CIDRs (from metadata or settings)")
    present = [e for e in sorted(enis, key=lambda e: e.device_index) if e.mac.lower() in link_names]
    with_v6 = [e for e in present if e.ipv6_prefixes]
    if with_v6 and ipv6_gateway is None:
        raise HostNetworkError(
            f"the node has no IPv6 default route (main table) but {', '.join(e.eni_id for e in with_v6)} "
            "hold(s) IPv6 prefixes: pods' IPv6 traffic would go nowhere; an IPv6 node cannot be "
            "made ready without one (on AWS it is learned by router advertisement on the primary ENI)"
        )
    links: list[EniLinkSpec] = []
    sysctls = {IP_FORWARD: FORWARDING_ON}
    if with_v6:
        # accept_ra=2 first: forwarding=1 would make the primary ignore RAs and lose
        # its IPv6 default route when it expires.
        for eni in present:
            if eni.is_primary or eni.device_index == 0:
                sysctls[accept_ra(link_names[eni.mac.lower()])] = ACCEPT_RA_WITH_FORWARDING
        sysctls[IPV6_FORWARDING] = FORWARDING_ON
    for eni in present:
        ifname = link_names[eni.mac.lower()]
        primary = eni.is_primary or eni.device_index == 0
        if eni.ipv6_prefixes:
            sysctls[proxy_ndp(ifname)] = PROXY_NDP_ON
            sysctls[proxy_delay(ifname)] = PROXY_DELAY_NONE
        links.append(
            EniLinkSpec(
                eni=eni,
                ifname=ifname,
                set_mtu=None if primary else mtu,
                address=None
                if primary
                else ipaddress.IPv4Interface(f"{eni.primary_ip}/{eni.subnet_cidr.prefixlen}"),
                table=None if primary else eni_table(eni.device_index),
                gateway6=ipv6_gateway if eni.ipv6_prefixes and not primary else None,
            )
        )
        # Replies to pods of one ENI may arrive on another: strict rp_filter would drop them.
        sysctls[rp_filter(ifname)] = RP_FILTER_LOOSE
    no_snat = [*vpc_cidrs, *snat_exclusions]
    chains: list[IptablesChain] = []
    if snat:
        chains.append(plan_snat_chain(primary_ip, no_snat))
    if imds_redirect_port:
        chains.append(plan_imds_chain(primary_ip, imds_redirect_port, veth_prefix))
    return HostPlan(
        links=tuple(links),
        rules=plan_rules(snat, no_snat),
        sysctls=sysctls,
        chains=tuple(chains),
    )


def render_restore(chains: Sequence[IptablesChain], table: str) -> str:
    """``iptables-restore --noflush`` input rebuilding our chains of ``table`` atomically.

    Declaring a chain (``:NAME - [0:0]``) in a restore flushes it, so the chain's new
    content replaces the old in one transaction; other chains are untouched.
    """
    lines = [f"*{table}"]
    mine = [c for c in chains if c.table == table]
    lines += [f":{c.chain} - [0:0]" for c in mine]
    for c in mine:
        lines += [" ".join(["-A", c.chain, *(_quote(a) for a in rule)]) for rule in c.rules]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def chain_rules_from_save(save_output: str, chain: str) -> list[str] | None:
    """The ``-A <chain>`` lines of an ``iptables-save`` dump; None if the chain is absent."""
    present = False
    rules: list[str] = []
    for line in save_output.splitlines():
        if line.startswith(f":{chain} "):
            present = True
        elif line.startswith(f"-A {chain} "):
            rules.append(line)
    return rules if present else None


def expected_save_lines(c: IptablesChain) -> list[str]:
    """How ``iptables-save`` prints the rules of ``c`` (our rules are in its canonical order)."""
    return [" ".join(["-A", c.chain, *(_quote(a) for a in rule)]) for rule in c.rules]


def _quote(arg: str) -> str:
    return f'"{arg}"' if (" " in arg or not arg) else arg


def _collapse(cidrs: Iterable[IPv4Net]) -> list[IPv4Net]:
    return list(ipaddress.collapse_addresses(cidrs))
