"""When each EC2 request arrived and when it was answered, in arrival order.

The counters say how many calls were made; the log says which of them were in flight
together (a node's chains running in parallel, or one after another), as the emulator's
own monotonic clock saw them. Bounded: a long benchmark keeps its latest calls only.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

MAX_CALLS = 100_000


@dataclass(frozen=True, slots=True)
class LoggedCall:
    action: str
    received: float  # monotonic, on arrival (before throttling, faults and latency)
    answered: float  # monotonic, when the response (or error) was ready

    def overlaps(self, other: LoggedCall) -> bool:
        """Both were in flight at some instant."""
        return self.received < other.answered and other.received < self.answered


class CallLog:
    def __init__(self, maxlen: int = MAX_CALLS) -> None:
        self._lock = threading.Lock()
        self._calls: deque[LoggedCall] = deque(maxlen=maxlen)

    def add(self, action: str, received: float) -> None:
        call = LoggedCall(action, received, time.monotonic())
        with self._lock:
            self._calls.append(call)

    def calls(self, action: str | None = None) -> list[LoggedCall]:
        with self._lock:
            out = list(self._calls)
        out.sort(key=lambda c: c.received)
        return [c for c in out if action is None or c.action == action]

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
