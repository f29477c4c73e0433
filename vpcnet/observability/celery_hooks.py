"""Observability of the Celery processes, wired through Celery's signals.

``install(settings)`` is called once by the ``workers`` app module (so by every process
that loads it: workers, beat, Flower, ``celery inspect``); each hook only acts in the
process it concerns:

- every publisher stamps a task message with the time it was first enqueued (header
  ``vpcnet_enqueued``; a retry keeps the original), so a worker can measure a node's
  provisioning time from the watcher's enqueue, across retries and worker processes;
- a worker logs JSON (``vpcnet.observability.logs``) instead of Celery's text format,
  with ``task`` / ``task_id`` / ``node`` bound for the duration of each task run;
- a worker counts task outcomes, retries and durations, observes provisioning time, and
  once ready serves ``/metrics`` on ``VPCNET_METRICS_PORT`` (0: off), including the
  queue depth read from the broker on each scrape.

Task metrics assume the worker's default thread pool (one process): a prefork pool
would count in child processes that this server does not see.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
import structlog
from celery import Task, signals

from vpcnet.observability.collectors import QueueCollector
from vpcnet.observability.logs import configure_logging
from vpcnet.observability.metrics import (
    PROVISIONING,
    TASK_DURATION,
    TASK_RETRIES,
    TASKS,
    TASKS_ACTIVE,
    serve_metrics,
)
from vpcnet.settings import Settings
from vpcnet.state.connection import connect
from vpcnet.tasknames import NODE_TASKS, PROVISION_NODE

log = structlog.get_logger("vpcnet.metrics")

ENQUEUED_HEADER = "vpcnet_enqueued"

_started: dict[str, tuple[float, float]] = {}  # task id -> (monotonic, wall) at start
_started_lock = threading.Lock()


def task_outcome(state: str | None) -> str:
    """success / retry / failure (a permanent error fails its task: ``workers.base``)."""
    return {"SUCCESS": "success", "RETRY": "retry", "FAILURE": "failure"}.get(
        state or "", (state or "unknown").lower())


def provisioned_at_end(task_name: str, state: str | None, retval: Any) -> bool:
    """This run wrote the node's ENIs with phase provisioned (its join completed)."""
    return (
        task_name == PROVISION_NODE
        and state == "SUCCESS"
        and isinstance(retval, dict)
        and retval.get("phase") == "provisioned"
        and bool(retval.get("written"))
    )


def enqueued_at(request: Any) -> float | None:
    """The enqueue time stamped on the task's message, if any."""
    raw = getattr(request, ENQUEUED_HEADER, None)
    if raw is None:
        raw = (getattr(request, "headers", None) or {}).get(ENQUEUED_HEADER)
    try:
        return float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


# -- publishers ---------------------------------------------------------------------------


def stamp_enqueue_time(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        headers.setdefault(ENQUEUED_HEADER, f"{time.time():.3f}")


# -- worker: logging ---------------------------------------------------------------------------


def _json_logging(loglevel: int | str | None = None, **_: Any) -> None:
    configure_logging("worker", loglevel or "INFO")


def _on_worker_init(**_: Any) -> None:
    # celeryd_init fires in worker processes only, before Celery sets logging up: a
    # setup_logging receiver makes Celery leave logging to us (beat and Flower keep
    # Celery's own format).
    signals.setup_logging.connect(_json_logging, weak=False)


# -- worker: tasks --------------------------------------------------------------------------


def _on_prerun(task_id: str = "", task: Task[Any, Any] | None = None, args: Any = None, **_: Any) -> None:
    if task is None:
        return
    structlog.contextvars.clear_contextvars()  # a pool thread runs one task at a time
    bound: dict[str, Any] = {"task": task.name, "task_id": task_id}
    if task.name in NODE_TASKS and args:  # bound to its log lines as ``node``
        bound["node"] = str(args[0])
    structlog.contextvars.bind_contextvars(**bound)
    TASKS_ACTIVE.labels(task.name).inc()
    with _started_lock:
        _started[task_id] = (time.monotonic(), time.time())


def _on_postrun(task_id: str = "", task: Task[Any, Any] | None = None, retval: Any = None,
                state: str | None = None, **_: Any) -> None:
    if task is None:
        return
    with _started_lock:
        started = _started.pop(task_id, None)
    name = task.name
    TASKS_ACTIVE.labels(name).dec()
    TASKS.labels(name, task_outcome(state)).inc()
    if started is not None:
        TASK_DURATION.labels(name).observe(time.monotonic() - started[0])
    if provisioned_at_end(name, state, retval):
        since = enqueued_at(task.request)
        if since is None and started is not None:
            since = started[1]
        if since is not None:
            PROVISIONING.observe(max(0.0, time.time() - since))
    structlog.contextvars.clear_contextvars()


def _on_retry(sender: Task[Any, Any] | None = None, reason: Any = None, **_: Any) -> None:
    if sender is None:
        return
    cause = getattr(reason, "exc", None) or reason  # celery's Retry wraps the error
    TASK_RETRIES.labels(sender.name, type(cause).__name__).inc()


# -- worker: the metrics endpoint ----------------------------------------------------------


def _serving(settings: Settings, queues: tuple[str, ...]) -> Any:
    def on_ready(**_: Any) -> None:
        if not settings.metrics_port:
            return
        client: list[redis.Redis[bytes]] = []

        def broker() -> redis.Redis[bytes]:
            if not client:  # built on first scrape, then reused
                client.append(connect(settings.broker, socket_timeout=5,
                                      socket_connect_timeout=5))
            return client[0]

        from prometheus_client import REGISTRY

        REGISTRY.register(QueueCollector(broker, queues))
        try:
            port = serve_metrics(settings.metrics_port)
        except OSError as e:  # e.g. the port is taken: tasks matter more than metrics
            log.error("metrics not served", port=settings.metrics_port, error=str(e))
            return
        log.info("metrics served", port=port)

    return on_ready


def install(settings: Settings, queues: tuple[str, ...]) -> None:
    """Connect the hooks (idempotent: Celery dispatches by receiver identity)."""
    signals.before_task_publish.connect(stamp_enqueue_time, weak=False)
    signals.celeryd_init.connect(_on_worker_init, weak=False)
    signals.task_prerun.connect(_on_prerun, weak=False)
    signals.task_postrun.connect(_on_postrun, weak=False)
    signals.task_retry.connect(_on_retry, weak=False)
    signals.worker_ready.connect(_serving(settings, queues), weak=False,
                                 dispatch_uid="vpcnet-metrics")


__all__ = [
    "ENQUEUED_HEADER",
    "enqueued_at",
    "install",
    "provisioned_at_end",
    "stamp_enqueue_time",
    "task_outcome",
]
