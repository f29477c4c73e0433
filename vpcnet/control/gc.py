"""Garbage collection of leaked ENIs: tagged for this cluster, ``available`` (attached to
nothing), and older than the grace period (so an ENI between create and attach is safe)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from vpcnet.aws.calls import attributed_to
from vpcnet.control.common import log
from vpcnet.control.context import ControlContext
from vpcnet.control.view import TAG_CLUSTER, TAG_CREATED_AT, EniView
from vpcnet.errors import Ec2PermanentError


@dataclass(frozen=True, slots=True)
class GcReport:
    available: int
    deleted: tuple[str, ...]


def created_at(eni: EniView) -> float | None:
    raw = eni.tags.get(TAG_CREATED_AT, "")
    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        return None


def gc_enis(ctx: ControlContext, now: float | None = None) -> GcReport:
    now = time.time() if now is None else now
    grace = ctx.settings.eni_gc_grace_seconds
    with attributed_to(None):
        enis = ctx.ec2.describe_enis({f"tag:{TAG_CLUSTER}": [ctx.cluster], "status": ["available"]})
        deleted: list[str] = []
        for e in enis:
            born = created_at(e)
            # An undated ENI carrying our cluster tag is still ours: the grace starts at 0.
            if born is not None and now - born < grace:
                continue
            try:
                if ctx.ec2.delete_eni(e.eni_id):
                    deleted.append(e.eni_id)
            except Ec2PermanentError as err:
                if err.code != "InvalidNetworkInterface.InUse":  # attached meanwhile: not leaked
                    raise
    if deleted:
        log.info("leaked ENIs deleted", count=len(deleted), enis=deleted)
    return GcReport(len(enis), tuple(deleted))
