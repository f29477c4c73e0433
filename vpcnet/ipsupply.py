"""Whether a node can still give a new pod an IP: the one rule behind the no-free-IPs taint
(the warm-pool scan, ``vpcnet.control.warmpool``) and the audit's check of that taint
(``vpcnet.ops.audit``), so that the audit flags exactly what the scan would have tainted.

Pure: it reads Redis' copy of the node's ENIs, the agent's pool report and the node
record, all gathered by the caller. The agent's CNI STATUS (code 50) answers the same
question from its own IPAM state.
"""

from __future__ import annotations

from collections.abc import Iterable

from vpcnet.domain import EniRecord, IpFamily, IPv4, IPv6Net
from vpcnet.plan import PoolUsage
from vpcnet.state.records import NodeRecord


def pool_ips(enis: Iterable[EniRecord]) -> frozenset[IPv4]:
    """Every pod IP the node's ENIs hold (secondary IPs and the addresses of prefixes)."""
    return frozenset(ip for r in enis for ip in r.pod_ips())


def _free(pool: frozenset[IPv4], usage: PoolUsage) -> frozenset[IPv4]:
    return pool - usage.assigned - usage.cooling - usage.release_requested


def free_ips(enis: Iterable[EniRecord], usage: PoolUsage) -> int:
    """IPs a pod could take now: in the pool, not assigned, not cooling down, not being
    given back."""
    return len(_free(pool_ips(enis), usage))


def cannot_grow(record: NodeRecord) -> str:
    """Why the control plane cannot add IPs to the node ("" while it can): the node is in
    error, or the last pass found the ENI/IP limits reached (``no_growth``)."""
    return record.error or record.no_growth


def live_ipv6_prefixes(enis: Iterable[EniRecord], usage: PoolUsage) -> frozenset[IPv6Net]:
    """The /80s pods may take addresses from: held by the node's ENIs, not being given back."""
    return frozenset(p for r in enis for p in r.ipv6_prefixes) - usage.release_requested6


def _no_ipv4(enis: Iterable[EniRecord], usage: PoolUsage, why_no_growth: str) -> bool:
    pool = pool_ips(enis)
    if _free(pool, usage) or (usage.cooling & pool) - usage.release_requested:
        return False
    return bool(why_no_growth)


def no_ip_can_be_had(enis: Iterable[EniRecord], usage: PoolUsage, why_no_growth: str,
                     family: IpFamily = IpFamily.IPV4) -> bool:
    """For some family the node's pods need (``family``): no address free, none leaving
    the cooldown (it ends well within an ADD's budget), and the pool cannot grow
    (``why_no_growth``: :func:`cannot_grow` of the node's record): what the agent's CNI
    STATUS answers with code 50. IPv6: a /80 never runs out, so only a node without a
    live one, that cannot get one, has none to give."""
    records = tuple(enis)
    if family.wants_ipv4 and _no_ipv4(records, usage, why_no_growth):
        return True
    if family.wants_ipv6 and not live_ipv6_prefixes(records, usage):
        return bool(why_no_growth)
    return False
