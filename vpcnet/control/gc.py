"""Garbage collection of leaked ENIs: tagged for this cluster, ``available`` (attached to
nothing), and older than the grace period (so an ENI between create and attach is safe).

Deleting an ENI gives back everything it holds, its IPv6 /80s too (EC2 releases them
with the ENI): the report names the /80s so freed.

Each delete is fenced by the lock of the node the ENI is tagged for (invariant 9): the
lock serialises GC with that node's provisioning pass (which may have created the ENI
and be about to attach it, under a ClientToken epoch older than the grace period) and
with its release. A node whose lock is held is left for the next run. An ENI that
names no node (vpcnet tags every ENI it creates; this one has only the cluster tag) is
fenced by the cluster's GC lock, which serialises GC runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from vpcnet.aws.calls import attributed_to
from vpcnet.aws.fence import fenced_by
from vpcnet.control.common import log
from vpcnet.control.context import ControlContext
from vpcnet.control.view import EniView, created_at
from vpcnet.domain import IPv6Net
from vpcnet.errors import Ec2PermanentError, LockHeld
from vpcnet.state.lock import RedisLock
from vpcnet.wellknown import TAG_CLUSTER, TAG_NODE


@dataclass(frozen=True, slots=True)
class GcReport:
    available: int
    deleted: tuple[str, ...]
    skipped: tuple[str, ...] = ()  # leaked, but their lock was held: the next run retries
    # The /80s the deleted ENIs held, back to the subnet with them.
    released_ipv6_prefixes: tuple[IPv6Net, ...] = ()


def gc_enis(ctx: ControlContext, now: float | None = None) -> GcReport:
    now = time.time() if now is None else now
    grace = ctx.settings.eni_gc_grace_seconds
    with attributed_to(None):
        enis = ctx.ec2.describe_enis({f"tag:{TAG_CLUSTER}": [ctx.cluster], "status": ["available"]})
        deleted: list[str] = []
        skipped: list[str] = []
        freed6: list[IPv6Net] = []
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
                freed6.extend(e.ipv6_prefixes)
    if deleted:
        log.info("leaked ENIs deleted", count=len(deleted), enis=deleted,
                 ipv6_prefixes=[str(p) for p in freed6])
    if skipped:
        log.info("leaked ENIs left for the next run", count=len(skipped), enis=skipped)
    return GcReport(len(enis), tuple(deleted), tuple(skipped), tuple(freed6))


def _lock_of(ctx: ControlContext, eni: EniView) -> RedisLock:
    try:
        return ctx.state.node_lock(eni.tags.get(TAG_NODE, ""))
    except ValueError:  # no (valid) node tag
        return ctx.state.gc_lock()


def _delete_fenced(ctx: ControlContext, eni: EniView) -> bool | None:
    """Delete ``eni`` under its lock: True if deleted now, False if it was gone or
    attached meanwhile, None if the lock was held or lost (not deleted; next run)."""
    lease = _lock_of(ctx, eni).acquire(ctx.lock_ttl_seconds)
    if lease is None:
        return None  # the node is being worked on; its pass may own this ENI
    try:
        with fenced_by(lease):
            return ctx.ec2.delete_eni(eni.eni_id)
    except LockHeld:
        return None  # expired during a long rate-limiter wait: not sent
    except Ec2PermanentError as err:
        if err.code != "InvalidNetworkInterface.InUse":  # attached meanwhile: not leaked
            raise
        return False
    finally:
        lease.release()
