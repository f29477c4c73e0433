"""The periodic reconcile (beat): desired vs Redis vs EC2 vs Kubernetes, for every node.

One Kubernetes LIST and a few batched DescribeInstances per run, whatever the number of
nodes; only nodes that differ get a task: a provisioning pass (Redis or EC2 drifted, a
pass died, an error to retry), a release (node or instance gone), or node_ready (the
agent reported while nobody was listening).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from vpcnet.aws.calls import attributed_to
from vpcnet.control.common import log
from vpcnet.control.context import ControlContext
from vpcnet.control.followup import Followup
from vpcnet.control.ready import agent_has_programmed
from vpcnet.control.view import InstanceView
from vpcnet.domain import NodePhase, parse_provider_id
from vpcnet.errors import VpcnetError
from vpcnet.plan import managed_enis
from vpcnet.state.control import NodeState
from vpcnet.tasknames import NODE_READY, PROVISION_NODE, RELEASE_NODE


def _instance_of(provider_id: str) -> tuple[str, str]:
    try:
        az, iid = parse_provider_id(provider_id)
    except ValueError:
        return "", ""
    return az, iid


def reconcile_scan(ctx: ControlContext) -> list[Followup]:
    states = {n: ctx.state.read_node(n) for n in ctx.state.list_nodes()}
    kube_nodes = {n.name: _instance_of(n.provider_id) for n in ctx.kube.list_nodes()[0]}
    with attributed_to(None):
        instances = ctx.ec2.describe_instances(
            [st.instance_id for st in states.values() if st and st.instance_id]
        )
    out: list[Followup] = []
    for name, st in states.items():
        if st is None or not st.instance_id:
            continue
        try:
            out.extend(_reconcile_node(ctx, st, kube_nodes.get(name), instances))
        except VpcnetError as e:  # one bad node must not stop the scan
            log.warning("reconcile skipped a node", node=name, error=str(e))
    out.extend(_unknown_nodes(kube_nodes, states))
    return out


def _unknown_nodes(
    kube_nodes: Mapping[str, tuple[str, str]], states: Mapping[str, NodeState | None]
) -> Iterator[Followup]:
    """Nodes of Kubernetes with an EC2 instance that Redis knows nothing of: Redis was
    lost (invariant 4: EC2 and the agents hold the truth), or the task the watcher sent
    died with a worker before it wrote anything. A provisioning pass rebuilds the node's
    state from EC2 (it creates nothing for ENIs the node already has)."""
    for name, (az, iid) in sorted(kube_nodes.items()):
        st = states.get(name)
        if iid and (st is None or not st.instance_id):
            yield Followup(PROVISION_NODE, (name, iid, az), why="no state in Redis")


def _reconcile_node(
    ctx: ControlContext,
    st: NodeState,
    kube: tuple[str, str] | None,
    instances: Mapping[str, InstanceView],
) -> Iterator[Followup]:
    iid = st.instance_id
    inst = instances.get(iid)
    if kube is None or kube[1] != iid or inst is None or not inst.alive:
        yield Followup(RELEASE_NODE, (st.name, iid), why="node or instance gone")
        return
    provision = Followup(PROVISION_NODE, (st.name, iid, kube[0]))
    phase = st.phase
    if phase in (None, NodePhase.PENDING, NodePhase.PROVISIONING, NodePhase.ERROR):
        if not ctx.state.lock_held(st.name):  # a pass that died, or an error worth retrying
            yield Followup(provision.task, provision.args, why=f"phase {phase}")
        return
    if phase not in (NodePhase.PROVISIONED, NodePhase.READY):
        return
    if _fingerprint_ec2(ctx, inst) != _fingerprint_redis(st):
        yield Followup(provision.task, provision.args, why="Redis differs from EC2")
    elif phase is NodePhase.PROVISIONED and agent_has_programmed(ctx, st):
        yield Followup(NODE_READY, (st.name,), why="agent ready")


# An ENI as both sides describe it: id, device index, and every pool entry (IPv4
# addresses, /28s and /80s, as strings). A /80 Redis lacks or names wrongly makes the
# node differ, and its pass rewrites Redis from EC2.
Fingerprint = set[tuple[str, int, frozenset[str]]]


def _fingerprint_ec2(ctx: ControlContext, inst: InstanceView) -> Fingerprint:
    return {
        (e.eni_id, e.device_index if e.device_index is not None else -1,
         frozenset(map(str, (*e.ips, *e.prefixes, *e.ipv6_prefixes))))
        for e in managed_enis(ctx.cluster, inst.enis)
    }


def _fingerprint_redis(st: NodeState) -> Fingerprint:
    return {
        (r.eni_id, r.device_index, frozenset(map(str, (*r.ips, *r.prefixes, *r.ipv6_prefixes))))
        for r in st.enis
    }


__all__ = ["reconcile_scan"]
