"""Garbage collection of leaked ENIs: tagged for this cluster, ``available`` (attached to
nothing), and older than the grace period (so an ENI between create and attach is safe).

Each delete is fenced by the lock of the node the ENI is tagged for (invariant 9): the
lock serialises GC with that node's provisioning pass (which may have created the ENI
and be about to attach it, under a ClientToken epoch older than the grace period) and
with its release. A node whose lock is held is left for the next run. An ENI without a
node tag was not made by vpcnet (every ENI it creates carries one): GC has no lock to
fence it by and leaves it to the operator; the audit reports it as leaked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from vpcnet.aws.calls import attributed_to
from vpcnet.aws.fence import fenced_by
from vpcnet.control.common import log
from vpcnet.control.context import ControlContext
from vpcnet.control.view import TAG_CLUSTER, TAG_NODE, EniView, created_at
from vpcnet.errors import Ec2PermanentError


@dataclass(frozen=True, slots=True)
class GcReport:
    available: int
    deleted: tuple[str, ...]
    skipped: tuple[str, ...] = ()  # leaked, but their node's lock was held or unknown


def gc_enis(ctx: ControlContext, now: float | None = None) -> GcReport:
    now = time.time() if now is None else now
    grace = ctx.settings.eni_gc_grace_seconds
    with attributed_to(None):
        enis = ctx.ec2.describe_enis({f"tag:{TAG_CLUSTER}": [ctx.cluster], "status": ["available"]})
        deleted: list[str] = []
        skipped: list[str] = []
        for e in enis:
            born = created_at(e.tags)
            # An undated ENI carrying our cluster tag is still ours: the grace starts at 0.
            if born is not None and now - born < grace:
                continue
            outcome = _delete_fenced(ctx, e)
            if outcome is None:
                skipped.append(e.eni_id)
            elif outcome:
                deleted.append(e.eni_id)
    if deleted:
        log.info("leaked ENIs deleted", count=len(deleted), enis=deleted)
    if skipped:
        log.info("leaked ENIs left for the next run", count=len(skipped), enis=skipped)
    return GcReport(len(enis), tuple(deleted), tuple(skipped))


def _delete_fenced(ctx: ControlContext, eni: EniView) -> bool | None:
    """Delete ``eni`` under its node's lock: True if deleted now, False if it was gone or
    attached meanwhile, None if its node's lock was held or unknown (not tried)."""
    node = eni.tags.get(TAG_NODE, "")
    try:
        lock = ctx.state.node_lock(node)
    except ValueError:  # no (valid) node tag: no lock to fence the delete by
        log.warning("leaked ENI without a node tag; left to the operator", eni=eni.eni_id)
        return None
    lease = lock.acquire(ctx.lock_ttl_seconds)
    if lease is None:
        return None  # the node is being worked on; its pass may own this ENI
    try:
        with fenced_by(lease):
            return ctx.ec2.delete_eni(eni.eni_id)
    except Ec2PermanentError as err:
        if err.code != "InvalidNetworkInterface.InUse":  # attached meanwhile: not leaked
            raise
        return False
    finally:
        lease.release()
