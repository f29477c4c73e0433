"""The Celery app of vpcnet's control plane: ``celery -A workers worker`` (and ``beat``).

Queues (a worker consumes both unless started with ``-Q``), and which task runs on which,
are ``vpcnet.tasknames``:

- ``ec2``: every task that calls EC2 (provision, release, GC, limit refresh). Its pace is
  set by the shared EC2 rate limiter, not by the worker.
- ``vpcnet``: work that must not wait behind a join storm: node_ready (the watcher sends
  it here) and beat's scans, reconcile and warm pool, which read Redis/Kubernetes (and
  batched describes) and enqueue per-node tasks.

Every task is idempotent and runs on ``workers.base.ControlTask`` (retries, acks late,
a permanent error fails the task); prefetch 1, and a time limit below the broker's
visibility timeout.
EC2 work is I/O-bound (EC2 latency and waiting for rate-limit tokens), so the default
pool is threads: one process runs ``VPCNET_WORKER_CONCURRENCY`` tasks at once on a small
machine. Settings come from ``VPCNET_*`` (``vpcnet.settings.Settings``).

With a Sentinel URL (``redis+sentinel://…``) the broker and the result backend use
kombu's and Celery's sentinel transports, derived from the same setting
(``vpcnet.state.broker``): a worker follows a failover without a restart.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from beat import beat_schedule
from vpcnet.observability.celery_hooks import install as install_observability
from vpcnet.settings import Settings
from vpcnet.state.broker import celery_broker_config
from vpcnet.tasknames import EC2_QUEUE, QUEUE_OF, QUEUES

settings = Settings.from_env()


def celery_config(s: Settings) -> dict[str, Any]:
    vis = s.broker_visibility_timeout_seconds
    broker = celery_broker_config(s.broker, vis)
    return {
        **broker,
        "result_expires": 3600,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": s.task_time_limit_seconds,
        "task_soft_time_limit": max(1, s.task_time_limit_seconds - 10),
        "worker_pool": "threads",
        "worker_concurrency": s.worker_concurrency,
        "worker_hijack_root_logger": False,
        # Task events for Flower from the start (no `celery control enable_events`
        # needed), including "sent", so queued tasks show before a worker takes them.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            **broker["broker_transport_options"],
            # Look for a dead worker's unacked tasks often enough to matter.
            "unacked_restore_interval": max(1, min(10, vis // 4)),
            "unacked_restore_throttle": 1,
            "socket_timeout": 30,
            "health_check_interval": 30,
        },
        # Each queue its own exchange and key: with Celery's defaults both would bind to
        # the default exchange under one key and every message would land in both.
        "task_queues": tuple(
            Queue(q, Exchange(q, type="direct"), routing_key=q)
            for q in QUEUES
        ),
        "task_default_exchange": EC2_QUEUE,
        "task_default_routing_key": EC2_QUEUE,
        "task_default_queue": EC2_QUEUE,
        "task_routes": {task: {"queue": queue} for task, queue in QUEUE_OF.items()},
        "beat_scheduler": "beat:LockedScheduler",
        "beat_schedule": beat_schedule(s),
        "beat_max_loop_interval": 5,
    }


app = Celery("vpcnet", include=["workers.tasks"])
app.conf.update(celery_config(settings))
# JSON logs, task metrics and /metrics on VPCNET_METRICS_PORT (see the module).
install_observability(settings, QUEUES)

__all__ = ["app", "settings"]
