"""Run a pass's work on helper threads in the pass's own context.

The EC2 choke point reads the lock that fences a mutation (``vpcnet.aws.fence``), the
call's priority and node ticket (``vpcnet.aws.priority``) and the node the call counts
for (``vpcnet.aws.calls``) from context variables, and structlog binds log fields the
same way. A new thread starts with an empty context: its mutations would be refused
as unfenced, and its reads served as background work of nobody. So every helper runs
in a copy of the submitting thread's context (one copy each: a context cannot be
entered by two threads at once).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import TypeVar

T = TypeVar("T")


def submit_here(pool: Executor, fn: Callable[[], T]) -> Future[T]:
    """``pool.submit(fn)``, run in a copy of the caller's context."""
    return pool.submit(contextvars.copy_context().run, fn)


__all__ = ["submit_here"]
