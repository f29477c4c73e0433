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

A pass serves the demand that arrives while it holds the lock (a burst's ADDs reach the
agent over a second or more, and a new ENI's chain takes ~3 s). Before it lets the lock
go it looks again: when the node's pods and waiting ADDs outgrew what it planned for, or
another pass was handed to it (``vpcnet.state.claims.PassHandover``: a pass that finds
the lock held by a provisioning pass hands its work over instead of retrying 2 s later),
it runs another round inside the same lock and fence, at most ``MAX_ROUNDS`` in all: a
whole pass planned from the ENIs the round before left and a fresh read of Redis, with
no DescribeInstances of its own (``vpcnet.control.regather`` says why that is sound).
Each round that calls EC2 records its own epoch before acting (the previous round,
finished, cleared its epoch), so every round's ClientTokens are its own and a round
killed and re-run replays its own. A hand-over or a demand the
last round could not take is reported (``Outcome.again``): the task sends one more pass.

Warm mode's ENIs held ahead (``Settings.warm_attached_enis``) are a nice-to-have that
must never break a node: they are planned only once the node is READY (a join stays
DescribeInstances + Assign; the pass node_ready sends, background priority, adds
them, or the warm-pool scan's should that be lost), and a failure of theirs (a subnet or ENI quota too small) fails neither the pass
nor the node: it is logged, a Warning Event goes out, the other lanes' work is written
back as usual, and no ENI ahead is tried again for the node for
``ENIS_AHEAD_BACKOFF_SECONDS`` (30 s after a temporary failure;
``NodeRecord.enis_ahead_after``, in the store).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from vpcnet.aws.calls import attributed_to
from vpcnet.control.act import Acted, act
from vpcnet.control.common import (
    EVENT_NORMAL,
    EVENT_WARNING,
    Deadline,
    log,
    node_lock,
    surface_error,
)
from vpcnet.control.context import ControlContext
from vpcnet.control.gather import gather
from vpcnet.control.inputs import ProvisionInputs
from vpcnet.control.regather import regather
from vpcnet.control.view import EniView
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
from vpcnet.plan import Plan, PoolUsage, join_calls, plan_node
from vpcnet.state.claims import HANDED_OVER, HELD_BY_OTHER_WORK, PassHandover
from vpcnet.state.lock import Lease
from vpcnet.state.records import ENIS_AHEAD_AFTER_FIELD

# Rounds one pass runs at most under its lock (the first included): a burst arrives
# within a few rounds; a node whose demand keeps growing beyond gets a new pass (the
# lock is let go between passes, so other work on the node, node_ready, gets a turn).
MAX_ROUNDS = 4
# A further round starts only while this share of the work budget is left.
_ROUND_BUDGET_SHARE = 0.5
# (reason, message) of a Normal Event about the node; a pass hands its Events to the
# caller, who emits them once the node's lock is let go (see ``_holding_lock``).
Announce = Callable[[str, str], None]

# After an ENI held ahead failed for good (a subnet without addresses, the account's
# ENI quota or the instance's attachments spent), the node's next try at one waits this
# long: those rarely come back sooner, and each try costs EC2 calls the limiter shares
# with every node. A temporary failure (5xx, throttling, the work budget) waits less.
ENIS_AHEAD_BACKOFF_SECONDS = 300.0
ENIS_AHEAD_RETRY_SECONDS = 30.0


def enis_ahead_backoff(err: Exception) -> float:
    """How long the node adds no ENI held ahead after ``err`` failed one."""
    return ENIS_AHEAD_BACKOFF_SECONDS if isinstance(err, PermanentError) else ENIS_AHEAD_RETRY_SECONDS


@dataclass(frozen=True, slots=True)
class Outcome:
    node: str
    phase: str = ""
    actions: int = 0
    written: bool = False
    generation: int = 0
    plan_calls: Mapping[str, int] = field(default_factory=dict)
    note: str = ""
    rounds: int = 1  # passes run under one holding of the lock
    handed_over: bool = False  # the lock's holder serves this pass's work
    # Handed over: when to run a pass again in case the holder died holding the lock
    # (kill -9 mid-pass); that pass is a no-op when the holder served the work.
    recheck_after: float = 0.0
    again: bool = False  # work was left for a further pass (the task sends it)

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
            return _locked_rounds(ctx, ref)
        except PermanentError as e:
            surface_error(ctx, node_name, e, _reason(e))
            raise


def _reason(e: Exception) -> str:
    if isinstance(e, ConfigError):
        return "InvalidConfiguration"
    if isinstance(e, NotFoundError):
        return "NotFound"
    return "ProvisioningFailed"


# A hand-over's safety pass runs this long after the holder's lock would expire.
_RECHECK_MARGIN_SECONDS = 0.5


def _handover(ctx: ControlContext) -> PassHandover:
    # Outlives every holding of the lock (the release deletes it): ten lock TTLs.
    return PassHandover(ctx.state.redis, ctx.state.keys, 10 * ctx.lock_ttl_seconds)


def _locked_rounds(ctx: ControlContext, ref: NodeRef) -> Outcome:
    """Hand the pass to the provisioning pass holding the node's lock, or take the lock
    and run rounds until the node's demand is served."""
    node = ref.name
    handover = _handover(ctx)
    for _ in range(2):  # the lock may be taken between the look and the acquire
        if handover.hand_over(node) == HANDED_OVER:
            recheck = handover.holder_seconds_left(node) + _RECHECK_MARGIN_SECONDS
            log.info("pass handed to the pass holding the node's lock", node=node,
                     recheck_after=round(recheck, 2))
            return Outcome(node, note="handed to the pass holding the node's lock",
                           rounds=0, handed_over=True, recheck_after=recheck)
        out = _holding_lock(ctx, ref, handover)
        if out is not None:
            return out
        if handover.hand_over(node) == HELD_BY_OTHER_WORK:
            break  # node_ready or a release holds it: retry later
    raise LockHeld(f"node {node} is being worked on by another worker", delay=2.0)


def _holding_lock(ctx: ControlContext, ref: NodeRef, handover: PassHandover) -> Outcome | None:
    """The rounds of one holding of the lock; None when another worker took the lock
    first (nothing was done)."""
    node = ref.name
    wanted_at_release: list[bool] = []
    acquired = False
    announced: list[tuple[str, str]] = []

    def release(lease: Lease) -> None:
        wanted_at_release.append(handover.release(node, lease.token))

    try:
        with node_lock(ctx, node, release=release) as token:
            acquired = True
            handover.begin(node, token)
            out = _rounds(ctx, ref, token, handover, lambda *event: announced.append(event))
    except LockHeld:
        if acquired:
            raise  # lost while acting: the task retries
        return None
    finally:
        # After the lock is let go: the agent may already report the pass's write, and
        # node_ready waits for this lock before it takes the taint off (an Event is a
        # Kubernetes round trip, 5-40 ms here, on a lone node's join otherwise).
        for reason, message in announced:
            _event(ctx, node, reason, message)
    if any(wanted_at_release) and not out.again:
        out = dataclasses.replace(out, again=True)  # handed over after the last look
    return out


def _rounds(ctx: ControlContext, ref: NodeRef, token: str, handover: PassHandover,
            announce: Announce) -> Outcome:
    node = ref.name
    deadline = Deadline(ctx.work_budget_seconds)
    epochs: set[str] = set()
    out, planned_for, last = _pass(ctx, ref, token, deadline, epochs, announce)
    while True:
        grew = _demand_outgrew(ctx, node, planned_for)
        wanted = handover.take_wanted(node, token)
        if not (grew or wanted):
            return out
        if out.rounds >= MAX_ROUNDS or deadline.remaining() < _ROUND_BUDGET_SHARE * ctx.work_budget_seconds:
            log.info("demand left for the next pass", node=node, rounds=out.rounds)
            return dataclasses.replace(out, again=True)
        log.info("another round for the demand that arrived during the pass", node=node,
                 round=out.rounds + 1, demand_grew=grew, handed_over=wanted)
        more, planned_for, last = _pass(ctx, ref, token, deadline, epochs, announce, after=last)
        out = _merged(out, more)


def _wanted(usage: PoolUsage) -> int:
    """The addresses a pass plans for, besides the warm targets: held ones and waiting ADDs."""
    return len(usage.assigned) + len(usage.assigned6) + usage.demand


def _demand_outgrew(ctx: ControlContext, node: str, planned_for: int) -> bool:
    usage = ctx.state.read_usage(node, ctx.settings.ip_cooldown_seconds)
    return usage.demand > 0 and _wanted(usage) > planned_for


def _merged(first: Outcome, later: Outcome) -> Outcome:
    calls = dict(first.plan_calls)
    for name, n in later.plan_calls.items():
        calls[name] = calls.get(name, 0) + n
    return Outcome(
        node=first.node,
        phase=later.phase or first.phase,
        actions=first.actions + later.actions,
        written=first.written or later.written,
        generation=max(first.generation, later.generation),
        plan_calls=calls,
        note=later.note or first.note,
        rounds=first.rounds + later.rounds,
    )


def ensure_node(ctx: ControlContext, ref: NodeRef, token: str) -> Outcome:
    """One converging pass; the caller holds the node's lock (``token``)."""
    return _pass(ctx, ref, token, Deadline(ctx.work_budget_seconds), set(),
                 lambda reason, message: _event(ctx, ref.name, reason, message))[0]


# What a finished round leaves the next round of the same holding to plan from: its
# inputs and the instance's ENIs as its act step left them (``vpcnet.control.regather``).
_Left = tuple[ProvisionInputs, tuple[EniView, ...]]


def _pass(ctx: ControlContext, ref: NodeRef, token: str, deadline: Deadline,
          epochs: set[str], announce: Announce,
          after: _Left | None = None) -> tuple[Outcome, int, _Left]:
    """One round: the outcome, the addresses it planned for (``_wanted``) and what it
    left. ``epochs``: the fresh epochs of this holding's earlier rounds (each round's
    own); ``announce``: takes the round's Normal Events; ``after``: what the round
    before it in this holding left (no DescribeInstances then)."""
    node = ref.name
    inputs = gather(ctx, ref) if after is None else regather(ctx, *after)
    calls_of = join_calls if after is None else Plan.ec2_calls
    if inputs.epoch in epochs and not (inputs.previous and inputs.previous.pass_epoch):
        # Only a clock that did not move between two rounds: a fresh epoch of its own.
        inputs = dataclasses.replace(inputs, epoch=f"{inputs.epoch}.{len(epochs)}")
    epochs.add(inputs.epoch)
    planned_for = _wanted(inputs.usage)
    ahead = inputs.previous is not None and inputs.previous.may_hold_enis_ahead(time.time())
    spec = dataclasses.replace(inputs.spec(), enis_ahead=ahead)
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
    if acted.ahead_failure is not None:
        _enis_ahead_failed(ctx, node, acted.ahead_failure, token)
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
    left = (inputs, acted.enis)
    if generation is None:
        previous = inputs.previous.version.generation if inputs.previous else 0
        return Outcome(node, phase, len(plan.actions), False, previous, calls_of(plan)), planned_for, left
    if plan.touches_ec2 and not inputs.was_ready:
        pod_ips = sum(len(r.pod_ips()) for r in wb.enis)
        ipv6 = sum(len(r.ipv6_prefixes) for r in wb.enis)
        extra = f", {ipv6} IPv6 /80" if ipv6 else ""
        announce("Provisioned",
                 f"{len(wb.enis)} ENIs, {pod_ips} pod IPs{extra} ({spec.mode.value}, {spec.ip_family.value})")
    return Outcome(node, phase, len(plan.actions), True, generation, calls_of(plan)), planned_for, left


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


def _enis_ahead_failed(ctx: ControlContext, node: str, err: Exception, token: str) -> None:
    """An ENI held ahead failed: logged, a Warning Event, and none tried again for the
    node before the back-off ends. Never raises: the pass goes on with its other work (a
    lost back-off write only means an earlier retry)."""
    backoff = enis_ahead_backoff(err)
    until = time.time() + backoff
    log.warning("an ENI held ahead failed; none is tried again before the back-off ends",
                node=node, error=str(err), backoff_seconds=backoff)
    try:
        ctx.state.record_intent(node, {ENIS_AHEAD_AFTER_FIELD: f"{until:.3f}"}, lock_token=token)
    except VpcnetError as e:
        log.warning("cannot record the back-off of the ENIs held ahead", node=node, error=str(e))
    try:
        ctx.kube.emit_event(node, "EnisAheadFailed",
                            f"an ENI held ahead (warm mode) could not be added: {err}; the node "
                            f"keeps its IPs, the next try in {backoff:g}s",
                            EVENT_WARNING)
    except (PermanentError, TemporaryError) as e:
        log.warning("cannot emit event", node=node, reason="EnisAheadFailed", error=str(e))


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
