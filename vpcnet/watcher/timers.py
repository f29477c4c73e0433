"""The watcher loop's timers and its per-node retry backoff (pure: no I/O, no threads).

A timer is a (kind, node) key with a due time. Kinds: ``retry`` (look at a node again
after a failed action), ``summary`` (refresh one node's status annotation), ``sweep``
(refresh every node's; node ""), and the dedup claims' actions (``provision``,
``ready``, ``demand``: the claim lapsed, the trailing edge of an enqueue).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterator

RETRY = "retry"
SUMMARY = "summary"
SWEEP = "sweep"

RETRY_MIN, RETRY_MAX = 1.0, 30.0


class TimerQueue:
    """Timers by (kind, node): one due time per key, the earliest asked for.

    A key scheduled again for later keeps its earlier time; for sooner, the sooner one
    wins and the later heap entry is skipped when it comes up.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, str, str]] = []
        self._due: dict[tuple[str, str], float] = {}
        self._seq = itertools.count()  # equal due times pop in scheduling order

    def schedule(self, kind: str, node: str, delay: float) -> None:
        due = self._clock() + delay
        key = (kind, node)
        if key in self._due and self._due[key] <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), kind, node))

    def clear(self) -> None:
        self._heap.clear()
        self._due.clear()

    def wait_time(self, longest: float) -> float:
        """How long the loop may block before the next timer is due (at most ``longest``)."""
        if not self._heap:
            return longest
        return max(0.0, min(longest, self._heap[0][0] - self._clock()))

    def pop_due(self) -> Iterator[tuple[str, str]]:
        """Pops each (kind, node) due by the time this starts; timers scheduled while it
        runs, for later than that, wait for the next pass."""
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            due, _, kind, node = heapq.heappop(self._heap)
            if self._due.get((kind, node)) != due:
                continue  # superseded by an earlier timer
            del self._due[(kind, node)]
            yield kind, node


class RetryBackoff:
    """Per node, the delay before the next retry: doubling from 1 s up to 30 s, until
    :meth:`reset` after a success."""

    def __init__(self) -> None:
        self._delay: dict[str, float] = {}

    def next_delay(self, node: str) -> float:
        delay = self._delay.get(node, RETRY_MIN)
        self._delay[node] = min(RETRY_MAX, delay * 2)
        return delay

    def reset(self, node: str) -> None:
        self._delay.pop(node, None)
