"""Thin Celery tasks: take ids, call ``vpcnet.control``; retries and failures are the base
class's (``workers.base.ControlTask``), task names and queues ``vpcnet.tasknames``'.

EC2 priority (``vpcnet.aws.priority``): each task declares whose calls it makes. A
node's provisioning pass is foreground (its join, or the pool its pods wait on) unless
the reconcile scan sent it for a node that is already READY; release, GC, reconcile,
warm-pool scans and limit refreshes are background.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar, cast

import structlog

from vpcnet.aws.priority import background, foreground
from vpcnet.control import gc, provision, ready, reconcile, release, warmpool
from vpcnet.control.common import refresh_limits as refresh_limits_of
from vpcnet.control.context import ControlContext
from vpcnet.control.followup import Followup
from vpcnet.domain import NodePhase
from vpcnet.errors import VpcnetError
from vpcnet.tasknames import (
    GC_ENIS,
    NODE_READY,
    PROVISION_NODE,
    RECONCILE_ALL,
    REFRESH_LIMITS,
    RELEASE_NODE,
    WARM_POOL,
)
from workers import app
from workers.base import ControlTask

log = structlog.get_logger("vpcnet.tasks")
F = TypeVar("F", bound=Callable[..., Any])


def _task(name: str) -> Callable[[F], F]:
    """``app.task`` on vpcnet's base class (typed: Celery's decorator is not)."""
    return cast(Callable[[F], F], app.task(base=ControlTask, name=name, bind=True))


def _provision_priority(ctx: ControlContext, node_name: str,
                        sent_by_scan: bool) -> contextlib.AbstractContextManager[None]:
    """Foreground, except a background scan's pass over a node that has joined: a node
    that is not READY yet is joining, whoever noticed it."""
    if sent_by_scan:
        try:
            st = ctx.state.read_node(node_name)
        except VpcnetError:
            st = None  # Redis is failing: the pass itself will retry; do not demote it
        if st is not None and st.phase is NodePhase.READY:
            return background()
    return foreground(node_name)


@_task(PROVISION_NODE)
def provision_node(self: ControlTask, node_name: str, instance_id: str, az: str,
                   background_scan: bool = False) -> dict[str, Any]:
    priority = _provision_priority(self.context, node_name, background_scan)
    self.clear_followup(node_name)
    with priority:
        out = provision.provision_node(self.context, node_name, instance_id, az)
    if out.again:  # handed over after the pass's last look, or demand beyond its rounds
        app.send_task(PROVISION_NODE, args=[node_name, instance_id, az],
                      kwargs={"background_scan": background_scan})
        log.info("follow-up enqueued", task=PROVISION_NODE, args=(node_name,),
                 why=f"work left after {out.rounds} rounds")
    elif out.handed_over:
        # The holder may have been killed holding the lock (its hand-over then lost):
        # one pass once that lock would have expired makes sure the work is done.
        app.send_task(PROVISION_NODE, args=[node_name, instance_id, az],
                      kwargs={"background_scan": background_scan}, countdown=out.recheck_after)
        log.info("recheck enqueued", task=PROVISION_NODE, args=(node_name,),
                 after_seconds=round(out.recheck_after, 2))
    return out.as_dict()


@_task(RELEASE_NODE)
def release_node(self: ControlTask, node_name: str, instance_id: str) -> dict[str, Any]:
    self.clear_followup(node_name)
    with background():
        out = release.release_node(self.context, node_name, instance_id)
    return {"node": out.node, "deleted": list(out.deleted), "note": out.note}


@_task(NODE_READY)
def node_ready(self: ControlTask, node_name: str) -> bool:
    self.clear_followup(node_name)
    with foreground(node_name):
        is_ready = ready.node_ready(self.context, node_name)
    if is_ready:  # what the pool wants now that the node is READY (its ENIs held ahead)
        try:
            _send(self.context, warmpool.scan_node(self.context, node_name), background_scan=True)
        except VpcnetError as e:  # the warm-pool scan sends it later; the node is READY
            log.warning("no pool pass after ready", node=node_name, error=str(e))
    return is_ready


def _send(ctx: ControlContext, followups: list[Followup], *, background_scan: bool = False) -> int:
    """``background_scan``: sent by a background scan (see ``_provision_priority``)."""
    # Fresh while the task may still wait in the queue, but at most ten reconcile
    # intervals: a failover can lose the clear of a claim (or the task's message), and a
    # claim as long as the visibility timeout (1 h) would keep every scan off the node.
    fresh = min(float(ctx.settings.broker_visibility_timeout_seconds),
                10 * ctx.settings.reconcile_interval_seconds)
    sent = 0
    for f in followups:
        if ctx.state.followups.claim(f.args[0], f.task, fresh):
            kwargs = {"background_scan": True} if background_scan and f.task == PROVISION_NODE else {}
            app.send_task(f.task, args=list(f.args), kwargs=kwargs)
            log.info("follow-up enqueued", task=f.task, args=f.args, why=f.why)
            sent += 1
    return sent


@_task(RECONCILE_ALL)
def reconcile_all(self: ControlTask) -> int:
    with background():
        return _send(self.context, reconcile.reconcile_scan(self.context), background_scan=True)


@_task(WARM_POOL)
def warm_pool(self: ControlTask) -> int:
    with background():
        return _send(self.context, warmpool.warm_pool_scan(self.context))


@_task(GC_ENIS)
def gc_enis(self: ControlTask) -> dict[str, Any]:
    with background():
        report = gc.gc_enis(self.context)
    return {"available": report.available, "deleted": list(report.deleted),
            "released_ipv6_prefixes": [str(p) for p in report.released_ipv6_prefixes]}


@_task(REFRESH_LIMITS)
def refresh_limits(self: ControlTask) -> list[str]:
    with background():
        return refresh_limits_of(self.context)
