"""Where one CNI request's time went: the record observers get, and its stopwatch."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestTiming:
    """Where one request's time went (for metrics and ``vpcnet bench cni``)."""

    command: str
    ok: bool
    total: float  # seconds, parse to reply
    checkpoint: float  # of which writing the checkpoint
    netlink: float  # of which programming the pod network
    code: int = 0  # the CNI error code of the reply (0: success)


class PhaseClock:
    """Seconds spent per phase ("ip": getting the addresses, "checkpoint", "netlink")
    by the request of this thread.

    Per thread: each request runs on its own thread, from ``reset`` to ``spent``.
    """

    def __init__(self) -> None:
        self._phase = threading.local()

    def reset(self) -> None:
        self._phase.ip = self._phase.checkpoint = self._phase.netlink = 0.0

    def spent(self, phase: str) -> float:
        return float(getattr(self._phase, phase))

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - start
            setattr(self._phase, phase, getattr(self._phase, phase, 0.0) + spent)
