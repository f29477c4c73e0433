"""What the watcher should do about one node: a pure function of what it sees.

Inputs are the node as watched, whether this leader has acted on it before (and on
which projection), and vpcnet's Redis view of it. The output says which writes and
which tasks are needed; the watcher then deduplicates and performs them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from vpcnet.domain import EniRecord, NodePhase, parse_provider_id
from vpcnet.kube.types import NodeObj, TaintEffect
from vpcnet.state.records import AgentRecord, NodeRecord
from vpcnet.wellknown import INSTANCE_ID_LABEL, KEY_PREFIX, NOT_READY_TAINT, STATUS_ANNOTATION

# Annotations vpcnet writes itself: a change to them must not trigger provisioning.
_OWN_ANNOTATIONS = frozenset({STATUS_ANNOTATION})
_OWN_LABELS = frozenset({INSTANCE_ID_LABEL})


@dataclass(frozen=True, slots=True)
class ControlView:
    """vpcnet's Redis state of the node, as far as the watcher cares."""

    instance_id: str = ""  # node hash: the instance vpcnet provisioned (or is provisioning)
    phase: NodePhase | None = None
    agent_ready: bool = False  # agent hash: ready == 1


@dataclass(frozen=True, slots=True)
class NodeWarning:
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class ProvisionArgs:
    node_name: str
    instance_id: str
    az: str


@dataclass(frozen=True, slots=True)
class NodePlan:
    """The writes and tasks one look at a node calls for (all empty: nothing to do)."""

    warning: NodeWarning | None = None
    add_taint: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    provision: ProvisionArgs | None = None
    node_ready: bool = False
    projection: str = ""  # what matters for provisioning; compare with the next look

    @property
    def empty(self) -> bool:
        return not (
            self.warning or self.add_taint or self.labels or self.provision or self.node_ready
        )


def projection_of(node: NodeObj) -> str:
    """A digest of what provisioning depends on: the instance, the node's vpcnet.io/
    annotations (mode, subnet, security-group overrides) and its labels (profiles select
    nodes by label). Status, heartbeats and vpcnet's own writes are left out, so the
    node's routine updates do not enqueue anything."""
    annotations = {
        k: v
        for k, v in node.annotations.items()
        if k.startswith(KEY_PREFIX) and k not in _OWN_ANNOTATIONS
    }
    labels = {k: v for k, v in node.labels.items() if k not in _OWN_LABELS}
    raw = json.dumps([node.provider_id, annotations, labels], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def plan_node(
    node: NodeObj,
    *,
    first_sight: bool,
    last_projection: str | None,
    view: ControlView,
) -> NodePlan:
    """Decide what to do about ``node``.

    ``first_sight``: this leader has not acted on the node yet (new node, or new leader).
    ``last_projection``: the projection this leader last enqueued provisioning for.
    """
    if node.deleting:
        return NodePlan()  # the DELETED event will follow; do not start work on it
    if not node.provider_id:
        return NodePlan(
            warning=NodeWarning(
                "MissingProviderID",
                "node has no spec.providerID; vpcnet gives pod IPs only to EC2 instances "
                "(aws:///<zone>/<instance-id>) and will act once the cloud provider sets it",
            )
        )
    try:
        az, instance_id = parse_provider_id(node.provider_id)
    except ValueError as e:
        return NodePlan(
            warning=NodeWarning(
                "InvalidProviderID",
                f"{e}; expected aws:///<zone>/<instance-id>. vpcnet will not give this node "
                "pod IPs until its providerID names an EC2 instance",
            )
        )
    projection = projection_of(node)
    # The name now belongs to another instance than the one vpcnet provisioned.
    replaced = view.instance_id not in ("", instance_id)
    known_ready = view.instance_id == instance_id and view.phase == NodePhase.READY
    new = (first_sight or replaced) and not known_ready
    changed = last_projection is not None and projection != last_projection
    has_taint = node.has_taint(NOT_READY_TAINT, TaintEffect.NO_SCHEDULE)
    labels = {}
    if node.labels.get(INSTANCE_ID_LABEL) != instance_id:
        labels[INSTANCE_ID_LABEL] = instance_id
    return NodePlan(
        add_taint=new and not has_taint,
        labels=labels,
        provision=ProvisionArgs(node.name, instance_id, az) if new or changed or replaced else None,
        # The agent says it programmed the node, but the taint is still there: the
        # node_ready task (which re-checks) removes it.
        node_ready=(
            has_taint and view.agent_ready and not replaced and view.instance_id == instance_id
        ),
        projection=projection,
    )


def plan_status_summary(
    fields: Mapping[str, str], enis: Sequence[EniRecord], agent: AgentRecord
) -> str | None:
    """vpcnet's view of a node for its ``vpcnet.io/status`` annotation (compact JSON), or
    None when vpcnet holds no state for it. Only slow-moving facts go in, so the
    annotation changes when the node's situation does, not on every heartbeat."""
    if not fields and not enis:
        return None
    record = NodeRecord.from_redis(fields)
    summary: dict[str, object] = {
        "phase": record.phase.value if record.phase else "",
        "instanceId": record.instance_id,
        "mode": record.mode,
        "enis": len(enis),
        "podIPs": sum(len(r.pod_ips()) for r in enis),
        "generation": record.version.generation,
        "agentReady": agent.ready,
        "agentGeneration": agent.generation,
    }
    if record.error:
        summary["error"] = record.error[:300]
    return json.dumps(summary, sort_keys=True, separators=(",", ":"))
