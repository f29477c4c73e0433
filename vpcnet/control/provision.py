"""provision_node: re-read EC2 -> plan -> act -> write Redis, under the node's lock.

The same function converges a node at any time (first join, warm-pool top-up and trim,
reconcile): it re-reads the instance, plans against the mode's targets and acts only on
the difference. A pass killed at any line and re-run leaves the EC2 state of one clean
run: the per-node lock serialises passes, a replayed CreateNetworkInterface carries the
same ClientToken (same pass epoch), and everything else is re-read before acting.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from vpcnet.aws.calls import attributed_to
from vpcnet.control.common import (
    EVENT_NORMAL,
    Deadline,
    instance_limits,
    log,
    node_lock,
    subnet_cidr,
    surface_error,
    targets,
)
from vpcnet.control.context import ControlContext
from vpcnet.control.networking import NodeNetworking, choose_subnet, node_networking
from vpcnet.control.view import (
    TAG_CLUSTER,
    TAG_CREATED_AT,
    TAG_INSTANCE,
    TAG_NODE,
    EniView,
    InstanceView,
    created_at_tag,
    eni_description,
)
from vpcnet.domain import EniRecord, IPv4, NodePhase, NodeRef
from vpcnet.errors import (
    ConfigError,
    Ec2PermanentError,
    NotFoundError,
    PermanentError,
    TemporaryError,
)
from vpcnet.plan import (
    AddEni,
    AssignIps,
    AssignPrefixes,
    EniConfig,
    NodeSpec,
    Plan,
    RequestRelease,
    SetDeleteOnTermination,
    UnassignIps,
    UnassignPrefixes,
    growth_blocker,
    join_calls,
    managed_enis,
    plan_node,
)
from vpcnet.state.control import NodeState


@dataclass(frozen=True, slots=True)
class Outcome:
    node: str
    phase: str = ""
    actions: int = 0
    written: bool = False
    generation: int = 0
    plan_calls: Mapping[str, int] = field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def provision_node(ctx: ControlContext, node_name: str, instance_id: str, az: str) -> Outcome:
    """Bring the node's ENIs and IPs to its plan; permanent errors are surfaced, then raised."""
    with attributed_to(node_name):
        try:
            ref = ctx.kube.get_node(node_name)
            if ref is None:
                return Outcome(node_name, note="node no longer exists; release cleans up")
            if ref.instance_id != instance_id:
                return Outcome(node_name, note=f"stale task: node is now {ref.instance_id}")
            with node_lock(ctx, node_name) as token:
                return ensure_node(ctx, ref, token)
        except PermanentError as e:
            surface_error(ctx, node_name, e, _reason(e))
            raise


def _reason(e: Exception) -> str:
    if isinstance(e, ConfigError):
        return "InvalidConfiguration"
    if isinstance(e, NotFoundError):
        return "NotFound"
    return "ProvisioningFailed"


def ensure_node(ctx: ControlContext, ref: NodeRef, token: str) -> Outcome:
    """One converging pass; the caller holds the node's lock (``token``)."""
    node = ref.name
    deadline = Deadline(ctx.work_budget_seconds)
    previous = ctx.state.read_node(node)
    # Validate what the node asks for before touching EC2: bad input creates nothing.
    net = node_networking(ctx.settings.mode, ref.labels, ref.annotations, ctx.profiles)

    inst = ctx.ec2.describe_instance(ref.instance_id)
    if inst is None or not inst.alive:
        state = inst.state if inst else "not found"
        raise NotFoundError(f"instance {ref.instance_id} of node {node} is {state}")
    limits = instance_limits(ctx, inst.instance_type)
    epoch = (previous.fields.get("pass_epoch") if previous else "") or f"{time.time():.3f}"
    spec = NodeSpec(
        cluster=ctx.cluster,
        node_name=node,
        instance_id=inst.instance_id,
        limits=limits,
        mode=net.mode,
        eni_config=_eni_config(ctx, net, inst),
        targets=targets(ctx),
        epoch=epoch,
    )
    usage = ctx.state.read_usage(node, ctx.settings.ip_cooldown_seconds)
    plan = plan_node(spec, inst.enis, usage)
    was_ready = previous is not None and previous.phase is NodePhase.READY
    if plan.touches_ec2:
        # Record the pass epoch before creating anything, so a re-run replays its tokens.
        ctx.state.set_fields(node, {
            "pass_epoch": epoch,
            "instance_id": inst.instance_id,
            **({} if was_ready else {"phase": NodePhase.PROVISIONING.value}),
        })
    log.info("provisioning pass", node=node, instance=inst.instance_id, mode=net.mode.value,
             actions=len(plan.actions), calls=plan.ec2_calls())

    enis, released = act(ctx, spec, inst, plan, deadline)
    records = [e.to_record(subnet_cidr(ctx, e.subnet_id)) for e in managed_enis(ctx.cluster, enis)]
    phase = NodePhase.READY if was_ready else NodePhase.PROVISIONED
    fields = {
        "instance_id": inst.instance_id,
        "instance_type": inst.instance_type,
        "az": inst.availability_zone,
        "subnet_id": inst.subnet_id,
        "primary_ip": str(inst.primary_ip or ""),
        "mode": net.mode.value,
        "phase": phase.value,
        "error": "",
        "pass_epoch": "",
        # Read by the agent: an ADD finding no IP coming fails at once when this says why.
        "no_growth": growth_blocker(spec, enis),
    }
    if plan.touches_ec2:
        fields["plan_calls"] = json.dumps(join_calls(plan), sort_keys=True)
    if previous is not None and not released and _same(previous, fields, records):
        return Outcome(node, phase.value, len(plan.actions), False, previous.generation,
                       join_calls(plan))
    generation = ctx.state.write_node(node, fields, records, lock_token=token, released=released)
    if plan.touches_ec2 and not was_ready:
        pod_ips = sum(len(r.pod_ips()) for r in records)
        _event(ctx, node, "Provisioned", f"{len(records)} ENIs, {pod_ips} pod IPs ({net.mode.value})")
    return Outcome(node, phase.value, len(plan.actions), True, generation, join_calls(plan))


def _same(previous: NodeState, fields: Mapping[str, str], records: Sequence[EniRecord]) -> bool:
    keep = {k: v for k, v in fields.items() if k != "plan_calls"}
    return all(previous.fields.get(k, "") == v for k, v in keep.items()) and list(
        previous.enis
    ) == sorted(records, key=lambda r: r.device_index)


def _eni_config(ctx: ControlContext, net: NodeNetworking, inst: InstanceView) -> EniConfig:
    primary = inst.primary_eni()
    groups = net.security_groups or (primary.security_groups if primary else inst.security_groups)
    if net.subnet_id:
        subnet = net.subnet_id
        with attributed_to(None):
            found = ctx.ec2.describe_subnets([subnet]) if ctx.state.cached_subnet(subnet) is None else []
        if found:
            ctx.state.store_subnet(subnet, found[0].cidr, found[0].availability_zone)
        cached = ctx.state.cached_subnet(subnet)
        if cached is None:
            raise ConfigError(f"subnet {subnet} does not exist")
        if cached[1] and cached[1] != inst.availability_zone:
            raise ConfigError(f"subnet {subnet} is in {cached[1]}, the node in {inst.availability_zone}")
    elif net.subnet_tags:
        filters = {f"tag:{k}": [v] for k, v in net.subnet_tags.items()}
        filters["vpc-id"] = [inst.vpc_id]
        chosen = choose_subnet(ctx.ec2.describe_subnets(filters=filters), inst.availability_zone)
        ctx.state.store_subnet(chosen.subnet_id, chosen.cidr, chosen.availability_zone)
        subnet = chosen.subnet_id
    else:
        subnet = primary.subnet_id if primary else inst.subnet_id
    return EniConfig(subnet_id=subnet, security_groups=tuple(sorted(groups)))


def act(
    ctx: ControlContext, spec: NodeSpec, inst: InstanceView, plan: Plan, deadline: Deadline
) -> tuple[list[EniView], list[IPv4]]:
    """Carry out the plan; returns the instance's ENIs as they now are and released IPs."""
    enis = {e.eni_id: e for e in inst.enis}
    released: list[IPv4] = []
    for a in plan.actions:
        deadline.check(type(a).__name__)
        if isinstance(a, AssignIps):
            got = ctx.ec2.assign_ips(a.eni_id, a.count)
            enis[a.eni_id] = dataclasses.replace(enis[a.eni_id], ips=enis[a.eni_id].ips + got)
        elif isinstance(a, AssignPrefixes):
            pfx = ctx.ec2.assign_prefixes(a.eni_id, a.count)
            enis[a.eni_id] = dataclasses.replace(enis[a.eni_id], prefixes=enis[a.eni_id].prefixes + pfx)
        elif isinstance(a, AddEni):
            view = add_eni(ctx, spec, a)
            enis[view.eni_id] = view
        elif isinstance(a, SetDeleteOnTermination):
            ctx.ec2.set_delete_on_termination(a.eni_id, a.attachment_id)
            enis[a.eni_id] = dataclasses.replace(enis[a.eni_id], delete_on_termination=True)
        elif isinstance(a, RequestRelease):
            ctx.state.request_release(spec.node_name, a.ips)
        elif isinstance(a, UnassignIps):
            ctx.ec2.unassign_ips(a.eni_id, a.ips)
            gone = set(a.ips)
            e = enis[a.eni_id]
            enis[a.eni_id] = dataclasses.replace(e, ips=tuple(i for i in e.ips if i not in gone))
            released += a.ips
        elif isinstance(a, UnassignPrefixes):
            ctx.ec2.unassign_prefixes(a.eni_id, a.prefixes)
            e = enis[a.eni_id]
            enis[a.eni_id] = dataclasses.replace(
                e, prefixes=tuple(p for p in e.prefixes if p not in a.prefixes)
            )
            released += [ip for p in a.prefixes for ip in p]
    return list(enis.values()), released


def add_eni(ctx: ControlContext, spec: NodeSpec, a: AddEni) -> EniView:
    """Create (addresses + tags in one call), attach at ``a.device_index``, DeleteOnTermination."""
    # The pass epoch, not now: a replayed ClientToken must carry identical parameters.
    created_at = created_at_tag(float(spec.epoch))
    eni = ctx.ec2.create_eni(
        subnet_id=a.subnet_id,
        security_groups=a.security_groups,
        ip_count=a.ip_count,
        prefix_count=a.prefix_count,
        client_token=a.client_token,
        description=eni_description(spec.cluster, spec.node_name),
        tags={
            TAG_CLUSTER: spec.cluster,
            TAG_NODE: spec.node_name,
            TAG_INSTANCE: spec.instance_id,
            TAG_CREATED_AT: created_at,
        },
    )
    if eni.attachment_id and eni.instance_id == spec.instance_id:
        attachment = eni.attachment_id  # a replayed token returned the ENI we attached
    else:
        try:
            attachment = ctx.ec2.attach_eni(eni.eni_id, spec.instance_id, a.device_index)
        except Ec2PermanentError as e:
            if e.code == "InvalidNetworkInterfaceID.NotFound":
                # The replayed token names an ENI that GC removed: start a new epoch.
                ctx.state.set_fields(spec.node_name, {"pass_epoch": ""})
                raise TemporaryError(f"ENI {eni.eni_id} vanished before attach", delay=1.0) from e
            _discard(ctx, eni.eni_id)  # nothing half-created
            raise
    ctx.ec2.set_delete_on_termination(eni.eni_id, attachment)
    return dataclasses.replace(
        eni,
        device_index=a.device_index,
        attachment_id=attachment,
        instance_id=spec.instance_id,
        delete_on_termination=True,
        status="in-use",
    )


def _discard(ctx: ControlContext, eni_id: str) -> None:
    try:
        ctx.ec2.delete_eni(eni_id)
    except (PermanentError, TemporaryError) as e:
        log.warning("could not delete unattached ENI; GC will", eni=eni_id, error=str(e))


def _event(ctx: ControlContext, node: str, reason: str, message: str) -> None:
    try:
        ctx.kube.emit_event(node, reason, message, EVENT_NORMAL)
    except (PermanentError, TemporaryError) as e:
        log.warning("cannot emit event", node=node, reason=reason, error=str(e))


__all__ = ["Outcome", "ensure_node", "provision_node"]
