"""Which lock fences the EC2 mutations of the current pass (invariant 9).

A pass that holds a node's lock runs its EC2 calls inside ``fenced_by(lease)``; the
choke point (``vpcnet.aws.ec2.Ec2.call``) asks the lease right before every mutating
call. A context variable rather than a parameter, like ``attributed_to``: the fence
must reach every mutating call (add_eni, _discard, release, GC) without each signature
carrying it, and the choke point refuses a mutation made outside any fence, so a new
caller that forgets it fails at once instead of acting unfenced.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Protocol


class Fence(Protocol):
    def fence(self, seconds: float) -> None:
        """Raise unless the lock is still ours; if it is, keep it ``seconds`` more."""

    def linger(self, seconds: float) -> None:
        """A call's outcome is unknown (it timed out after leaving): EC2 may still carry
        it out, so keep the lock ``seconds`` more and let it expire, never release it."""


_current: contextvars.ContextVar[Fence | None] = contextvars.ContextVar(
    "vpcnet_ec2_fence", default=None
)


@contextlib.contextmanager
def fenced_by(fence: Fence) -> Iterator[None]:
    """EC2 mutations inside the block are fenced by ``fence``."""
    token = _current.set(fence)
    try:
        yield
    finally:
        _current.reset(token)


def current_fence() -> Fence | None:
    return _current.get()


__all__ = ["Fence", "current_fence", "fenced_by"]
