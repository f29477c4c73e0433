"""The warm-pool scan (beat): which nodes need a top-up or trim, and the no-free-IPs taint
(its rule: ``vpcnet.ipsupply``).

EC2-free: it plans from Redis' copy of each node's ENIs and the agent's pool report, and
only nodes whose plan is not empty get a provisioning pass (which re-reads EC2).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from vpcnet.control.common import log, targets
from vpcnet.control.context import ControlContext
from vpcnet.control.followup import Followup
from vpcnet.domain import IpFamily, Mode, NodePhase
from vpcnet.errors import ConfigError, StateError, VpcnetError
from vpcnet.ipsupply import cannot_grow, no_ip_can_be_had
from vpcnet.plan import EniConfig, NodeSpec, PoolUsage, plan_node, view_from_record
from vpcnet.state.control import NodeState
from vpcnet.tasknames import PROVISION_NODE
from vpcnet.wellknown import NO_FREE_IPS_TAINT


def warm_pool_scan(ctx: ControlContext) -> list[Followup]:
    out: list[Followup] = []
    for node in ctx.state.list_nodes():
        try:
            out.extend(_scan_node(ctx, node))
        except VpcnetError as e:  # one bad node must not stop the scan
            log.warning("warm-pool scan skipped a node", node=node, error=str(e))
    return out


def scan_node(ctx: ControlContext, node: str) -> list[Followup]:
    """The warm-pool scan of one node: node_ready runs it for a node it made READY,
    whose ENIs held ahead (warm mode) are planned only from then on, so that they come
    with the next pass and not the next scan (~10 s later)."""
    return list(_scan_node(ctx, node))


def _scan_node(ctx: ControlContext, node: str) -> Iterator[Followup]:
    st = ctx.state.read_node(node)
    if st is None or st.phase not in (NodePhase.PROVISIONED, NodePhase.READY) or not st.enis:
        return
    usage = ctx.state.read_usage(node, ctx.settings.ip_cooldown_seconds)
    record = st.record
    family = IpFamily.parse(record.ip_family)
    if st.phase is NodePhase.READY:
        _no_free_ips_taint(ctx, st, no_ip_can_be_had(st.enis, usage, cannot_grow(record), family))
    mode = Mode(record.mode or ctx.settings.mode.value)
    if mode is Mode.FULL and not _ipv6_pending(family, st, usage):
        return  # full mode has nothing to top up or trim (its /80s may have work)
    limits = ctx.state.cached_limits(record.instance_type)
    if limits is None:
        return  # provisioning fills the cache; nothing to plan against yet
    first = st.enis[0]
    spec = NodeSpec(
        cluster=ctx.cluster,
        node_name=node,
        instance_id=st.instance_id,
        limits=limits,
        mode=mode,
        eni_config=EniConfig(first.subnet_id, first.security_groups),
        targets=targets(ctx),
        ip_family=family,
        ipv6_subnet_cidr=first.subnet_ipv6_cidr,
        enis_ahead=record.may_hold_enis_ahead(time.time()),  # READY, no failure backing off
    )
    try:
        plan = plan_node(spec, [view_from_record(ctx.cluster, r) for r in st.enis], usage)
    except ConfigError:
        return  # provisioning surfaces it
    if plan:
        yield Followup(PROVISION_NODE, (node, st.instance_id, record.az),
                       why=f"warm pool: {len(plan.actions)} actions")


def _ipv6_pending(family: IpFamily, st: NodeState, usage: PoolUsage) -> bool:
    """The node's /80s may need a pass: one is being given back, one is held that the
    family no longer wants (its pods gone since), or a wanted one is missing."""
    held = any(r.ipv6_prefixes for r in st.enis)
    return bool(usage.release_requested6) or held != family.wants_ipv6


def _no_free_ips_taint(ctx: ControlContext, st: NodeState, empty: bool) -> None:
    tainted = st.record.no_free_ips
    if empty == tainted:
        return
    try:
        if empty:
            ctx.kube.ensure_taint(st.name, NO_FREE_IPS_TAINT, "NoSchedule")
        else:
            ctx.kube.remove_taint(st.name, NO_FREE_IPS_TAINT)
        ctx.state.set_fields(st.name, {"no_free_ips": "1" if empty else "0"}, register=False)
    except (StateError, VpcnetError) as e:
        log.warning("no-free-ips taint not updated", node=st.name, error=str(e))
