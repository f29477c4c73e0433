"""The ``vpcnet.io/status`` annotation writer: each node's copy follows vpcnet's view.

A node's status annotation follows Redis within a second of a change the watcher is
told about (coalescing bursts), and within a sweep for changes nobody announces.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from vpcnet.errors import VpcnetError
from vpcnet.kube.client import KubeClient
from vpcnet.kube.metrics import ACTION_ERRORS
from vpcnet.kube.types import NodeObj
from vpcnet.kube.watchstate import WatcherState
from vpcnet.watcher.decisions import plan_status_write, with_status
from vpcnet.watcher.stats import WatcherStats
from vpcnet.watcher.timers import SUMMARY, SWEEP, TimerQueue
from vpcnet.wellknown import STATUS_ANNOTATION

log = structlog.get_logger("vpcnet.watcher")

SUMMARY_DELAY = 1.0
SUMMARY_SWEEP = 30.0


class StatusWriter:
    def __init__(
        self,
        kube: KubeClient,
        state: WatcherState,
        timers: TimerQueue,
        stats: WatcherStats,
        cache: dict[str, NodeObj],
        acting: Callable[[], bool],
    ) -> None:
        self._kube = kube
        self._state = state
        self._timers = timers
        self._stats = stats
        # The loop's node cache: a written node's entry is replaced by its written copy.
        self._cache = cache
        self._acting = acting  # leads right now: checked before each write

    def soon(self, name: str) -> None:
        """Refresh the node's annotation in a moment (changes in a burst share a write)."""
        if self._acting() and name in self._cache:
            self._timers.schedule(SUMMARY, name, SUMMARY_DELAY)

    def sweep(self) -> None:
        """Refresh every node's annotation now, and again in a sweep's time."""
        self.refresh(list(self._cache))
        self._timers.schedule(SWEEP, "", SUMMARY_SWEEP)

    def refresh(self, names: list[str]) -> None:
        """Write ``vpcnet.io/status`` where vpcnet's view differs from the node's copy."""
        try:
            summaries = self._state.summaries(names)
        except VpcnetError as e:
            log.warning("state.unavailable", error=str(e))
            return
        self._stats.summary_checks += 1
        for name, summary in summaries.items():
            node = self._cache.get(name)
            value = plan_status_write(node, summary)
            if node is None or value is None:
                continue
            if not self._acting():
                return
            try:
                self._kube.set_annotations(name, {STATUS_ANNOTATION: value})
            except VpcnetError as e:
                ACTION_ERRORS.labels("patch_node").inc()
                log.warning("node.status_failed", node=name, error=str(e))
                continue
            # Our own copy, until the watch brings the node back: no second write meanwhile.
            self._cache[name] = with_status(node, value)
            self._stats.summaries_written += 1
