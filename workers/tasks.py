"""Thin Celery tasks: take ids, call ``vpcnet.control``, retry what is temporary.

EC2 priority (``vpcnet.aws.priority``): each task declares whose calls it makes. A
node's provisioning pass is foreground (its join, or the pool its pods wait on) unless
the reconcile scan sent it for a node that is already READY; release, GC, reconcile,
warm-pool scans and limit refreshes are background.

Retries: a ``TemporaryError`` (throttling that persisted, 5xx, a held node lock, Redis
blips) is retried with exponential backoff and full jitter, never sooner than the delay
the error asks for. A ``PermanentError`` was already surfaced by the control layer
(Kubernetes Event, Redis error, phase ERROR) and ends the task without a retry loop.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

import structlog
from celery import Task

from vpcnet.aws.priority import background, foreground
from vpcnet.control import gc, provision, ready, reconcile, release, warmpool
from vpcnet.control.common import refresh_limits as refresh_limits_of
from vpcnet.control.context import ControlContext
from vpcnet.control.followup import Followup
from vpcnet.domain import NodePhase
from vpcnet.errors import PermanentError, TemporaryError, VpcnetError
from vpcnet.tasknames import (
    GC_ENIS,
    NODE_READY,
    PROVISION_NODE,
    RECONCILE_ALL,
    REFRESH_LIMITS,
    RELEASE_NODE,
    WARM_POOL,
)
from workers import app, settings

log = structlog.get_logger("vpcnet.tasks")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0

_ctx: ControlContext | None = None
_ctx_lock = threading.Lock()


def context() -> ControlContext:
    """One context (Redis pool, boto3 client, Kubernetes client) per worker process."""
    global _ctx
    with _ctx_lock:
        if _ctx is None:
            _ctx = ControlContext.from_settings(settings)
        return _ctx


def backoff(retries: int, floor: float | None) -> float:
    """Exponential backoff with full jitter, at least ``floor`` seconds."""
    cap = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**retries)
    return max(random.uniform(0, cap), floor or 0.0)


def _run(task: Task, fn: Callable[[], T], node: str | None = None,
         priority: contextlib.AbstractContextManager[None] | None = None) -> T | dict[str, str]:
    """``priority``: the EC2 priority of the task's calls (background when not given)."""
    if node is not None:
        context().state.followups.clear(node, task.name)
    try:
        with priority or background():
            return fn()
    except TemporaryError as e:
        countdown = backoff(task.request.retries, e.delay)
        log.info("task retries", task=task.name, node=node, error=str(e), countdown=round(countdown, 2))
        raise task.retry(exc=e, countdown=countdown) from e
    except PermanentError as e:
        return {"error": type(e).__name__, "message": str(e)}


_OPTS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": 100,
}


def _task(name: str) -> Callable[[F], F]:
    """``app.task`` with vpcnet's options (typed: Celery's decorator is not)."""
    return cast(Callable[[F], F], app.task(name=name, **_OPTS))


def _provision_priority(node_name: str, sent_by_scan: bool) -> contextlib.AbstractContextManager[None]:
    """Foreground, except a background scan's pass over a node that has joined: a node
    that is not READY yet is joining, whoever noticed it."""
    if sent_by_scan:
        try:
            st = context().state.read_node(node_name)
        except VpcnetError:
            st = None  # Redis is failing: the pass itself will retry; do not demote it
        if st is not None and st.phase is NodePhase.READY:
            return background()
    return foreground(node_name)


@_task(PROVISION_NODE)
def provision_node(self: Task, node_name: str, instance_id: str, az: str,
                   background_scan: bool = False) -> Any:
    return _run(self, lambda: provision.provision_node(context(), node_name, instance_id, az).as_dict(),
                node_name, _provision_priority(node_name, background_scan))


@_task(RELEASE_NODE)
def release_node(self: Task, node_name: str, instance_id: str) -> Any:
    def go() -> dict[str, Any]:
        out = release.release_node(context(), node_name, instance_id)
        return {"node": out.node, "deleted": list(out.deleted), "note": out.note}

    return _run(self, go, node_name)


@_task(NODE_READY)
def node_ready(self: Task, node_name: str) -> Any:
    return _run(self, lambda: ready.node_ready(context(), node_name), node_name,
                foreground(node_name))


def _send(followups: list[Followup], *, background_scan: bool = False) -> int:
    """``background_scan``: sent by a background scan (see ``_provision_priority``)."""
    ctx = context()
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
def reconcile_all(self: Task) -> Any:
    return _run(self, lambda: _send(reconcile.reconcile_scan(context()), background_scan=True))


@_task(WARM_POOL)
def warm_pool(self: Task) -> Any:
    return _run(self, lambda: _send(warmpool.warm_pool_scan(context())))


@_task(GC_ENIS)
def gc_enis(self: Task) -> Any:
    def go() -> dict[str, Any]:
        report = gc.gc_enis(context())
        return {"available": report.available, "deleted": list(report.deleted)}

    return _run(self, go)


@_task(REFRESH_LIMITS)
def refresh_limits(self: Task) -> Any:
    return _run(self, lambda: refresh_limits_of(context()))
