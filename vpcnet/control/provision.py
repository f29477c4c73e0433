"""provision_node: read -> plan -> act -> write back, under the node's lock.

The same function converges a node at any time (first join, warm-pool top-up and trim,
reconcile). A pass is four steps, as cilium's ``pkg/ipam`` splits compute from act:

1. gather (``vpcnet.control.gather``): every input read once into ``ProvisionInputs``;
2. plan (``vpcnet.plan.plan_node``, pure) against the mode's targets;
3. act (``vpcnet.control.act``): the plan's EC2 mutations only, each fenced by the lock,
   independent lanes (each new ENI's chain, each existing ENI) in parallel;
4. write back (``vpcnet.control.writeback`` decides, ``ControlState.write_node`` lands
   fields, ENIs and release requests in one atomic step, fenced by the lock): once,
   after acting. A READY node whose pods wait on addresses assigned to its existing
   ENIs while new ENIs are being made gets those first, in a write of their own (a
   generation of its own) as soon as the assigns are done; the chains' ENIs follow in
   the pass's last write. A pass whose acting failed writes back what its other lanes
   did (keeping its epoch for the retry), then raises.

One write may precede acting, the *intent*: the pass epoch that the ClientTokens carry.
A pass killed after CreateNetworkInterface and re-run must replay the same token (and
get the same ENI back, not leak one), so the epoch must be durable before the call; it
is written fenced, and only when the plan calls EC2. Everything else is re-read by the
next pass, so a pass killed at any line leaves the EC2 state of one clean run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from vpcnet.aws.calls import attributed_to
from vpcnet.control.act import Acted, act
from vpcnet.control.common import EVENT_NORMAL, Deadline, log, node_lock, surface_error
from vpcnet.control.context import ControlContext
from vpcnet.control.gather import gather
from vpcnet.control.inputs import ProvisionInputs
from vpcnet.control.writeback import (
    WriteBack,
    intent_fields,
    plan_write_back,
    retired_epoch_fields,
    wants_early_write,
)
from vpcnet.domain import NodeRef
from vpcnet.errors import (
    ConfigError,
    LockHeld,
    NotFoundError,
    PermanentError,
    TemporaryError,
    VpcnetError,
)
from vpcnet.plan import Plan, join_calls, plan_node


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
    inputs = gather(ctx, ref)
    spec = inputs.spec()
    plan = plan_node(spec, inputs.instance.enis, inputs.usage)
    if plan.touches_ec2:
        ctx.state.record_intent(node, intent_fields(inputs), lock_token=token)
    log.info("provisioning pass", node=node, instance=spec.instance_id, mode=spec.mode.value,
             ip_family=spec.ip_family.value, actions=len(plan.actions), calls=plan.ec2_calls())
    early: list[tuple[WriteBack, int]] = []  # the write of the grown pools, once landed

    def pools_grown(grown: Acted) -> None:
        wb = plan_write_back(inputs, plan, grown.enis, grown.released, finished=False)
        generation = _write_back(ctx, node, wb, token)
        if generation is not None:
            early.append((wb, generation))
            log.info("grown pools written back ahead of the new ENIs", node=node,
                     generation=generation)

    acted = act(ctx.ec2, spec, inputs.instance, plan, deadline,
                on_pools_grown=pools_grown if wants_early_write(inputs, plan) else None)
    if acted.failure is not None:
        _write_back_failed(ctx, node, inputs, plan, acted, early[0][0] if early else None, token)
        raise acted.failure
    wb = plan_write_back(inputs, plan, acted.enis, acted.released)
    if early:
        wb = wb.after(early[0][0])
    phase = wb.record.phase.value if wb.record.phase else ""
    generation = _write_back(ctx, node, wb, token)
    if generation is None and early:
        generation = early[0][1]
    if generation is None:
        previous = inputs.previous.version.generation if inputs.previous else 0
        return Outcome(node, phase, len(plan.actions), False, previous, join_calls(plan))
    if plan.touches_ec2 and not inputs.was_ready:
        pod_ips = sum(len(r.pod_ips()) for r in wb.enis)
        ipv6 = sum(len(r.ipv6_prefixes) for r in wb.enis)
        extra = f", {ipv6} IPv6 /80" if ipv6 else ""
        _event(ctx, node, "Provisioned",
               f"{len(wb.enis)} ENIs, {pod_ips} pod IPs{extra} ({spec.mode.value}, {spec.ip_family.value})")
    return Outcome(node, phase, len(plan.actions), True, generation, join_calls(plan))


def _write_back_failed(ctx: ControlContext, node: str, inputs: ProvisionInputs, plan: Plan,
                       acted: Acted, early: WriteBack | None, token: str) -> None:
    """What a pass whose acting failed did, written back (fenced) so that Redis holds the
    ENIs its other lanes attached; its epoch kept for the retry, or retired when a
    ClientToken names an ENI that is gone. Never raises over the pass's own failure."""
    if isinstance(acted.failure, LockHeld):
        return  # the lock is gone: no write would be accepted, the next pass re-reads EC2
    wb = plan_write_back(inputs, plan, acted.enis, acted.released, finished=False,
                         retire_epoch=acted.retire_epoch)
    if early is not None:
        wb = wb.after(early)
    try:
        if wb.replaces_state:
            _write_back(ctx, node, wb, token)
        elif acted.retire_epoch:
            ctx.state.record_intent(node, retired_epoch_fields(), lock_token=token)
    except VpcnetError as e:
        log.warning("cannot write back a failed pass; the next pass re-reads EC2",
                    node=node, error=str(e))


def _write_back(ctx: ControlContext, node: str, wb: WriteBack, token: str) -> int | None:
    """One store write of the pass; its generation, or None when the node's state itself
    was not rewritten (at most release requests were added)."""
    if wb.replaces_state:
        return ctx.state.write_node(node, wb.record.to_redis(), wb.enis, lock_token=token,
                                    released=wb.released, release_requests=wb.release_requests)
    if wb.release_requests:
        ctx.state.request_release(node, wb.release_requests, lock_token=token)
    return None


def _event(ctx: ControlContext, node: str, reason: str, message: str) -> None:
    try:
        ctx.kube.emit_event(node, reason, message, EVENT_NORMAL)
    except (PermanentError, TemporaryError) as e:
        log.warning("cannot emit event", node=node, reason=reason, error=str(e))


__all__ = ["Outcome", "ensure_node", "provision_node"]
