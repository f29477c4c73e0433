"""The base class of every vpcnet task: retry semantics come from the error types, as
Celery's task guide shows (custom task classes, "Automatic retry for known exceptions").

- A ``TemporaryError`` (throttling that persisted, 5xx, a held node lock, Redis blips) is
  retried with exponential backoff and full jitter (``retry_backoff``), never sooner than
  the ``delay`` the error asks for (the rate limiter's turn, a Retry-After). Celery's knobs
  have no such floor, so :meth:`ControlTask.retry` applies it to the countdown that
  ``autoretry_for`` computed.
- A ``PermanentError`` was already surfaced by the control layer (Kubernetes Event, Redis
  error, phase ERROR): the task fails at once (state FAILURE, the error as its result's
  exception, a failed task in Flower); ``throws`` makes the worker log it as an expected
  error, without a traceback.
- Every task is idempotent: ``acks_late`` + ``reject_on_worker_lost`` (a killed worker's
  task is redelivered).
- The worker builds the tasks' shared context as it gets ready (``worker_ready``: its
  event loop starts, no message taken yet): building it (boto3's service model, the
  Kubernetes client) takes ~0.4 s, which the first task, often a joining node's
  provisioning, would otherwise wait for.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import structlog
from celery import Task, signals

from vpcnet.control.context import ControlContext
from vpcnet.errors import PermanentError, TemporaryError
from workers import settings

log = structlog.get_logger("vpcnet.tasks")


class ControlTask(Task[Any, Any]):
    autoretry_for = (TemporaryError,)
    retry_backoff = 1  # seconds: the n-th retry waits up to 2**n s (full jitter)...
    retry_backoff_max = 60  # ...and never more than this
    retry_jitter = True
    max_retries = 100
    throws = (PermanentError,)
    acks_late = True
    reject_on_worker_lost = True

    # One context (Redis pool, boto3 client, Kubernetes client) per worker process, shared
    # by every task (Celery makes one instance of each task class per process).
    _context: ClassVar[ControlContext | None] = None
    _context_lock: ClassVar[threading.Lock] = threading.Lock()

    @property
    def context(self) -> ControlContext:
        return ControlTask.shared_context()

    @staticmethod
    def shared_context() -> ControlContext:
        with ControlTask._context_lock:
            if ControlTask._context is None:
                ControlTask._context = ControlContext.from_settings(settings)
            return ControlTask._context

    def clear_followup(self, node: str) -> None:
        """This run is the follow-up a scan may have claimed for ``node``: drop the claim,
        so that the next scan may send the task again if the node still needs it."""
        self.context.state.followups.clear(node, self.name)

    def retry(self, args: Any = None, kwargs: Any = None, exc: Exception | None = None,
              throw: bool = True, eta: Any = None, countdown: float | None = None,
              max_retries: int | None = None, **options: Any) -> Any:
        if isinstance(exc, TemporaryError) and exc.delay is not None and eta is None:
            countdown = max(countdown or 0.0, exc.delay)
        limit = self.max_retries if max_retries is None else max_retries
        if limit is None or self.request.retries < limit:
            log.info("task retries", task=self.name, error=str(exc),
                     countdown=None if countdown is None else round(countdown, 2))
        return super().retry(args=args, kwargs=kwargs, exc=exc, throw=throw, eta=eta,
                             countdown=countdown, max_retries=max_retries, **options)


@signals.worker_ready.connect(weak=False)
def build_context_before_consuming(**_: Any) -> None:
    """Celery sends ``worker_ready`` once, from the consumer, before it handles a message
    (and after logging is set up; never in beat or Flower)."""
    try:
        ControlTask.shared_context()
    except Exception as e:  # the first task builds it again and fails as it would have
        log.warning("control context not built at start", error=str(e))
        return
    log.info("control context built")
