"""The act step of a provisioning pass: the plan's EC2 mutations, and nothing else.

Every call goes through the fenced ``Ec2`` adapter (invariant 9: none after the node's
lock is lost). No Redis or Kubernetes here: what acting changed comes back as a value
for the pass's write-back (``vpcnet.control.writeback``).

The plan's lanes (``vpcnet.control.lanes``) run in parallel on a few helper threads,
each in the pass's context (``vpcnet.control.fanout``): the lock's fence, the call
priority and node ticket, the node's call attribution. Within a lane actions keep their
order. A failing lane stops the others from starting another action, but an action
under way completes (a chain is one action: nothing is left half-created), and every
lane's result is kept, so the pass can write back what it did before it raises.

A lane of an ENI held ahead (``Lane.ahead``, warm mode) is best effort: its failure
stops no other lane and fails no pass (``Acted.ahead_failure``, for the pass to log and
back off), unless it is the loss of the node's lock.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

import structlog

from vpcnet.aws.ec2 import Ec2
from vpcnet.control.common import Deadline
from vpcnet.control.fanout import submit_here
from vpcnet.control.lanes import Lane, plan_lanes
from vpcnet.control.view import EniView, InstanceView, created_at_tag, eni_description
from vpcnet.errors import Ec2PermanentError, LockHeld, PermanentError, TemporaryError
from vpcnet.plan import (
    Action,
    AddEni,
    AssignIps,
    AssignIpv6Prefixes,
    AssignPrefixes,
    NodeSpec,
    Plan,
    Releasable,
    SetDeleteOnTermination,
    UnassignIps,
    UnassignIpv6Prefixes,
    UnassignPrefixes,
)
from vpcnet.wellknown import TAG_CLUSTER, TAG_CREATED_AT, TAG_INSTANCE, TAG_NODE

log = structlog.get_logger("vpcnet.control")

# Helper threads per pass, at most: the worker already runs many passes at once (one
# per pool thread), each adds at most this many, and the limiter paces them anyway.
# Eight lanes cover every type up to 8 ENIs (the primary's assign and 7 chains) in one
# round; the 15-ENI types take two.
MAX_PARALLEL_LANES = 8


class StaleClientToken(TemporaryError):
    """The pass epoch's ClientToken names an ENI that is gone (GC deleted it before it
    was attached): the epoch must be retired, or every re-run replays the dead ENI."""


@dataclass(frozen=True, slots=True)
class Acted:
    enis: tuple[EniView, ...]  # the instance's ENIs as they now are
    released: tuple[Releasable, ...]  # addresses (and /80s) handed back to EC2
    failure: Exception | None = None  # the first lane's failure; the pass raises it
    # Some lane's ClientToken names an ENI that is gone (GC deleted it, or the lane
    # discarded it): a retry must mint new tokens, not replay that one.
    retire_epoch: bool = False
    # The first failure of a lane of an ENI held ahead: not the pass's (``failure``).
    ahead_failure: Exception | None = None

    @property
    def finished(self) -> bool:
        return self.failure is None


class ChainEvents(Protocol):
    def attached(self, view: EniView) -> None:
        """The new ENI is attached: from now on it is the node's."""

    def discarded(self, eni_id: str) -> None:
        """The new ENI could not be attached and was deleted: its token is spent."""


class _Progress:
    """What the lanes did so far; shared by the lane threads."""

    def __init__(self, enis: Iterable[EniView]) -> None:
        self._lock = threading.Lock()
        self._enis = {e.eni_id: e for e in enis}
        self._released: list[Releasable] = []
        self._failures: list[Exception] = []
        self._ahead_failures: list[Exception] = []
        self._halted = False
        self._token_spent = False

    @property
    def stopped(self) -> bool:
        with self._lock:
            return self._halted or bool(self._failures)

    def halt(self) -> None:
        """The pass is being torn down (interrupted): no lane starts another action."""
        with self._lock:
            self._halted = True

    def eni(self, eni_id: str) -> EniView:
        with self._lock:
            return self._enis[eni_id]

    def update(self, view: EniView, released: Iterable[Releasable] = ()) -> None:
        with self._lock:
            self._enis[view.eni_id] = view
            self._released += released

    def attached(self, view: EniView) -> None:
        self.update(view)

    def discarded(self, eni_id: str) -> None:
        with self._lock:
            self._token_spent = True

    def fail(self, e: Exception) -> None:
        with self._lock:
            self._failures.append(e)

    def fail_ahead(self, e: Exception) -> None:
        """A lane of an ENI held ahead failed: the other lanes go on."""
        with self._lock:
            self._ahead_failures.append(e)

    def snapshot(self) -> Acted:
        with self._lock:
            failures = tuple(self._failures)
            ahead = tuple(self._ahead_failures)
            return Acted(tuple(self._enis.values()), tuple(self._released),
                         failures[0] if failures else None,
                         self._token_spent
                         or any(isinstance(f, StaleClientToken) for f in failures + ahead),
                         ahead[0] if ahead else None)


def act(ec2: Ec2, spec: NodeSpec, inst: InstanceView, plan: Plan, deadline: Deadline, *,
        on_pools_grown: Callable[[Acted], None] | None = None) -> Acted:
    """Carry out the plan's EC2 actions, independent lanes in parallel (RequestRelease
    is the write-back's). Failures come back in ``Acted.failure``, with what the other
    lanes did.

    ``on_pools_grown`` is called once, on this thread, when every existing ENI's lane is
    done (without failure) and new ENIs are still being made, if some lane added
    addresses to an existing ENI: waiting pods need those before the new ENIs."""
    lanes = plan_lanes(plan)
    progress = _Progress(inst.enis)
    if len(lanes) <= 1:
        for lane in lanes:
            _run_lane(ec2, spec, lane, deadline, progress)
        return progress.snapshot()
    chains = [lane for lane in lanes if lane.adds_eni]
    early = on_pools_grown if chains and any(lane.grows_pool for lane in lanes) else None
    with ThreadPoolExecutor(max_workers=min(len(lanes), MAX_PARALLEL_LANES),
                            thread_name_prefix=f"act-{spec.node_name}") as pool:
        # Existing ENIs' lanes first: with more lanes than threads they start first.
        running: list[tuple[Lane, Future[None]]] = [
            (lane, submit_here(pool, functools.partial(_run_lane, ec2, spec, lane, deadline, progress)))
            for lane in lanes
        ]
        try:
            if early is not None:
                wait([f for lane, f in running if not lane.adds_eni])
                grown = progress.snapshot()
                if grown.finished:
                    early(grown)
        except Exception as e:
            progress.fail(e)  # no lane starts another action; the pool waits for the rest
        except BaseException:
            progress.halt()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return progress.snapshot()


def _run_lane(ec2: Ec2, spec: NodeSpec, lane: Lane, deadline: Deadline, progress: _Progress) -> None:
    for a in lane.actions:
        if progress.stopped:
            return  # another lane failed: the next pass re-plans the rest
        try:
            deadline.check(type(a).__name__)
            _do(ec2, spec, a, progress)
        except LockHeld as e:
            progress.fail(e)  # the lock is lost: no lane may go on, ahead or not
            return
        except Exception as e:
            if lane.ahead:
                log.warning("an ENI held ahead failed; the pass goes on", node=spec.node_name,
                            device_index=getattr(a, "device_index", None), error=str(e))
                progress.fail_ahead(e)
            else:
                progress.fail(e)
            return


def _do(ec2: Ec2, spec: NodeSpec, a: Action, progress: _Progress) -> None:
    if isinstance(a, AssignIps):
        got = ec2.assign_ips(a.eni_id, a.count)
        e = progress.eni(a.eni_id)
        progress.update(dataclasses.replace(e, ips=e.ips + got))
    elif isinstance(a, AssignPrefixes):
        pfx = ec2.assign_prefixes(a.eni_id, a.count)
        e = progress.eni(a.eni_id)
        progress.update(dataclasses.replace(e, prefixes=e.prefixes + pfx))
    elif isinstance(a, AddEni):
        progress.update(add_eni(ec2, spec, a, progress))
    elif isinstance(a, SetDeleteOnTermination):
        ec2.set_delete_on_termination(a.eni_id, a.attachment_id)
        progress.update(dataclasses.replace(progress.eni(a.eni_id), delete_on_termination=True))
    elif isinstance(a, UnassignIps):
        ec2.unassign_ips(a.eni_id, a.ips)
        gone = set(a.ips)
        e = progress.eni(a.eni_id)
        progress.update(dataclasses.replace(e, ips=tuple(i for i in e.ips if i not in gone)), a.ips)
    elif isinstance(a, UnassignPrefixes):
        ec2.unassign_prefixes(a.eni_id, a.prefixes)
        e = progress.eni(a.eni_id)
        progress.update(
            dataclasses.replace(e, prefixes=tuple(p for p in e.prefixes if p not in a.prefixes)),
            [ip for p in a.prefixes for ip in p],
        )
    elif isinstance(a, AssignIpv6Prefixes):
        got6 = ec2.assign_ipv6_prefixes(a.eni_id, a.count)
        e = progress.eni(a.eni_id)
        progress.update(dataclasses.replace(e, ipv6_prefixes=e.ipv6_prefixes + tuple(got6)))
    elif isinstance(a, UnassignIpv6Prefixes):
        ec2.unassign_ipv6_prefixes(a.eni_id, a.prefixes)
        e = progress.eni(a.eni_id)
        progress.update(
            dataclasses.replace(
                e, ipv6_prefixes=tuple(p for p in e.ipv6_prefixes if p not in a.prefixes)),
            a.prefixes,
        )


def add_eni(ec2: Ec2, spec: NodeSpec, a: AddEni, events: ChainEvents) -> EniView:
    """Create (addresses + tags in one call), attach at ``a.device_index``, DeleteOnTermination.

    ``events`` hears of the ENI once it is attached (from then on it is the node's: a
    failed DeleteOnTermination leaves it attached, the next pass sets the flag) or
    discarded (an attach that failed for good: nothing half-created)."""
    # The pass epoch, not now: a replayed ClientToken must carry identical parameters.
    created_at = created_at_tag(float(spec.epoch))
    eni = ec2.create_eni(
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
            attachment = ec2.attach_eni(eni.eni_id, spec.instance_id, a.device_index)
        except Ec2PermanentError as e:
            if e.code == "InvalidNetworkInterfaceID.NotFound":
                raise StaleClientToken(f"ENI {eni.eni_id} vanished before attach", delay=1.0) from e
            _discard(ec2, eni.eni_id)  # nothing half-created
            events.discarded(eni.eni_id)
            raise
    attached = dataclasses.replace(
        eni,
        device_index=a.device_index,
        attachment_id=attachment,
        instance_id=spec.instance_id,
        delete_on_termination=False,
        status="in-use",
    )
    events.attached(attached)
    ec2.set_delete_on_termination(eni.eni_id, attachment)
    return dataclasses.replace(attached, delete_on_termination=True)


def _discard(ec2: Ec2, eni_id: str) -> None:
    try:
        ec2.delete_eni(eni_id)
    except (PermanentError, TemporaryError) as e:
        log.warning("could not delete unattached ENI; GC will", eni=eni_id, error=str(e))
