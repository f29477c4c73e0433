"""The watcher leader's choices besides one look at a node: pure, no I/O.

:func:`vpcnet.kube.nodeplan.plan_node` decides what one look at a node calls for (taint,
labels, provision, ready, warning). These decide the rest: which dedup claim and which
arguments each enqueue has, whether a lapsed claim calls for one more, which nodes to
catch up on or release, and whether a node's status annotation is stale. The loop reads,
these decide, the loop acts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from vpcnet.domain import parse_provider_id
from vpcnet.kube.nodeplan import NodeWarning, projection_of
from vpcnet.kube.types import NodeObj
from vpcnet.wellknown import NOT_READY_TAINT, STATUS_ANNOTATION

# The dedup claims' actions, one claim per node and action (``vpcnet.state.claims``).
PROVISION = "provision"
DEMAND = "demand"  # provisioning for ADDs waiting on a ready node
READY = "ready"
RELEASE = "release"


@dataclass(frozen=True, slots=True)
class Enqueue:
    """One task for the leader to enqueue through the node's claim for ``action``: within
    the claim's window, a second enqueue with an equal ``claim_value`` is a duplicate."""

    node: str
    action: str
    claim_value: str
    args: tuple[str, ...]  # the task's arguments


def plan_provision(node: NodeObj) -> Enqueue:
    """Provisioning of the node's instance, one per instance and window. ValueError
    when the providerID names no EC2 instance."""
    az, instance_id = parse_provider_id(node.provider_id)
    return Enqueue(node.name, PROVISION, instance_id, (node.name, instance_id, az))


def plan_demand(node: NodeObj, waiting: int, reported_at: str) -> Enqueue | None:
    """ADDs wait on a ready node for its pool to grow: one provisioning pass plans for
    all of them. Its claim is per demand report (``reported_at``): a new report goes
    through at once, a repeated message about the same one is a duplicate."""
    if waiting <= 0:
        return None
    try:
        az, instance_id = parse_provider_id(node.provider_id)
    except ValueError:
        return None
    return Enqueue(node.name, DEMAND, reported_at or "-", (node.name, instance_id, az))


def plan_ready(node_name: str) -> Enqueue:
    """The node_ready task (it re-checks the agent, then removes the not-ready taint)."""
    return Enqueue(node_name, READY, "1", (node_name,))


def plan_release(node_name: str, instance_id: str) -> Enqueue:
    """Release of what vpcnet holds for the instance that was the node."""
    return Enqueue(node_name, RELEASE, instance_id, (node_name, instance_id))


def has_trailing_edge(action: str) -> bool:
    """Whether an enqueue folded into a held claim is looked at again when the claim
    lapses. A release is not: the node is gone, and one release frees everything."""
    return action != RELEASE


def plan_trailing_provision(node: NodeObj, last_enqueued: str | None) -> Enqueue | None:
    """When the provision claim lapses: once more, only if what provisioning depends on
    changed since this leader last enqueued it (``last_enqueued``, a projection; None:
    it never did, the claim was a predecessor's)."""
    if projection_of(node) == last_enqueued:
        return None
    try:
        return plan_provision(node)
    except ValueError:
        return None  # became unusable meanwhile; the next look at it warns


def awaits_ready(node: NodeObj) -> bool:
    """The node still has the not-ready taint: its agent's ready report is for node_ready."""
    return node.has_taint(NOT_READY_TAINT)


def awaiting_ready(nodes: Mapping[str, NodeObj]) -> list[str]:
    """The nodes whose agent's ready report would go to node_ready."""
    return [name for name, node in nodes.items() if awaits_ready(node)]


def instance_of_deleted(node: NodeObj) -> str | None:
    """The instance a deleted node was, by its providerID (None: it names none; vpcnet's
    Redis view of the node may still know one)."""
    try:
        return parse_provider_id(node.provider_id)[1]
    except ValueError:
        return None


def orphan_candidates(known: Collection[str], watched: Collection[str]) -> list[str]:
    """Nodes vpcnet holds state for that the watch does not show, in name order. Each
    must be confirmed absent by a direct read before its release: releasing a live node
    would take its pods' addresses away."""
    return sorted(set(known) - set(watched))


def warning_key(node: NodeObj, warning: NodeWarning) -> tuple[str, str]:
    """What a warning Event is deduplicated by: the same reason about the same
    providerID is emitted once (until the node is fixed or deleted, or a term ends)."""
    return (warning.reason, node.provider_id)


def plan_status_write(node: NodeObj | None, summary: str | None) -> str | None:
    """The ``vpcnet.io/status`` value to write: vpcnet's summary, where the node's copy
    differs (None: nothing to write, or no state or no node to write it for)."""
    if summary is None or node is None or node.annotations.get(STATUS_ANNOTATION) == summary:
        return None
    return summary


def with_status(node: NodeObj, summary: str) -> NodeObj:
    """The node as it is once the summary is written (until the watch brings it back)."""
    return replace(node, annotations={**node.annotations, STATUS_ANNOTATION: summary})
