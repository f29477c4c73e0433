"""The watcher's one way onto the task queue: a task through its dedup claim.

Per node and action, a Redis claim (``dedup:<node>:<action>``, value = instance id)
lets one enqueue through per window; a change that arrives while the claim holds is
enqueued once when it lapses (trailing edge), so a storm of updates costs O(1) tasks
and no change is lost.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from vpcnet.errors import VpcnetError
from vpcnet.kube.metrics import ACTION_ERRORS, TASKS_DEDUPLICATED, TASKS_ENQUEUED
from vpcnet.kube.watchstate import TaskSender, WatcherState
from vpcnet.watcher.decisions import Enqueue, has_trailing_edge
from vpcnet.watcher.stats import WatcherStats
from vpcnet.watcher.timers import TimerQueue

log = structlog.get_logger("vpcnet.watcher")


class TaskEnqueuer:
    def __init__(
        self,
        state: WatcherState,
        sender: TaskSender,
        stats: WatcherStats,
        timers: TimerQueue,
        acting: Callable[[], bool],
    ) -> None:
        self._state = state
        self._sender = sender
        self._stats = stats
        self._timers = timers
        self._acting = acting  # leads right now: checked before the claim

    def enqueue(self, task: str, request: Enqueue) -> str | None:
        """Claim then send: the task id; "" when an equal earlier enqueue holds the claim
        (that counts as done, and schedules the trailing re-check); None on failure (the
        caller retries)."""
        if not self._acting():
            return None
        node, action = request.node, request.action
        try:
            claim = self._state.claim(node, action, request.claim_value)
        except VpcnetError as e:
            ACTION_ERRORS.labels("claim").inc()
            log.warning("task.claim_failed", node=node, task=task, error=str(e))
            return None
        if not claim.won:
            self._stats.deduplicated[task] += 1
            TASKS_DEDUPLICATED.labels(task).inc()
            if has_trailing_edge(action):
                self._timers.schedule(action, node, claim.remaining)
            return ""
        try:
            task_id = self._sender.send(task, request.args)
        except VpcnetError as e:
            ACTION_ERRORS.labels("enqueue").inc()
            log.warning("task.enqueue_failed", node=node, task=task, error=str(e))
            try:
                self._state.drop_claim(node, action)
            except VpcnetError:
                pass  # the claim lapses with its TTL
            return None
        self._stats.enqueued[task] += 1
        TASKS_ENQUEUED.labels(task).inc()
        log.info("task.enqueued", node=node, task=task, task_id=task_id, args=list(request.args))
        return task_id
