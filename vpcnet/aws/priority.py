"""Which EC2 calls go first in the shared rate limiter, set by context (like
``vpcnet.aws.calls.attributed_to``).

Two classes: ``FOREGROUND`` — what a joining node or a waiting pod needs — and
``BACKGROUND`` — warm-pool trims, GC, reconcile. The limiter serves a bucket's
background waiters only when no foreground waiter is queued for it. Foreground calls
are ordered by their node's ticket (the limiter gives a node one on its first
foreground call and keeps it while the node keeps calling), so the oldest joining
node's calls are served first and nodes finish one after another, not in waves.

Calls made outside any declared context (CLI, audit, scripts) are background: work
nobody waits on must not delay a join. Calls that give resources back (unassign,
detach, delete) are background in any context: no pod waits on a release.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
from collections.abc import Iterator
from dataclasses import dataclass


class Priority(enum.IntEnum):
    FOREGROUND = 0
    BACKGROUND = 1


@dataclass(frozen=True, slots=True)
class CallPriority:
    level: Priority
    node: str | None = None  # the node whose ticket orders a foreground call


_BACKGROUND = CallPriority(Priority.BACKGROUND)
_current: contextvars.ContextVar[CallPriority] = contextvars.ContextVar(
    "vpcnet_ec2_priority", default=_BACKGROUND
)


@contextlib.contextmanager
def _set(p: CallPriority) -> Iterator[None]:
    token = _current.set(p)
    try:
        yield
    finally:
        _current.reset(token)


def foreground(node: str | None) -> contextlib.AbstractContextManager[None]:
    """EC2 calls inside the block are what ``node``'s join (or a pod waiting on it) needs."""
    return _set(CallPriority(Priority.FOREGROUND, node))


def background() -> contextlib.AbstractContextManager[None]:
    """EC2 calls inside the block are housekeeping: they wait while foreground calls queue."""
    return _set(_BACKGROUND)


_RELEASING_PREFIXES = ("Unassign", "Detach", "Delete", "Disassociate")


def current_priority(action: str = "") -> CallPriority:
    """The priority of a call of ``action`` made here."""
    p = _current.get()
    if p.level is Priority.FOREGROUND and action.startswith(_RELEASING_PREFIXES):
        return _BACKGROUND
    return p
