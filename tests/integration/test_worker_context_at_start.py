"""A worker builds its tasks' context (Redis pool, boto3 client, Kubernetes client) as it
gets ready, before it takes a message: the first task, often a joining node's
provisioning, does not spend ~0.4 s building it (a lone node's join measured it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import Celery

from tests.fixtures.celery import CeleryProcs
from tests.fixtures.metrics import json_lines
from vpcnet.tasknames import NODE_READY, QUEUE_OF

pytestmark = pytest.mark.timeout(120)


def test_the_first_task_runs_on_the_context_built_at_start(
    celery_procs: CeleryProcs, task_client: Celery, kubeconfig_path: Path
) -> None:
    celery_procs.start_worker()
    events = [e["event"] for e in json_lines(celery_procs.log("w1").read_text(errors="replace"))]
    assert "control context built" in events, events
    assert events.index("control context built") < next(
        i for i, e in enumerate(events) if e.endswith(" ready.")
    )
    # Built at start, it needs the kubeconfig no more: a context built by the first task
    # would fail to load it now, and so would the task.
    kubeconfig_path.unlink()
    result = task_client.send_task(NODE_READY, args=["never-joined"], queue=QUEUE_OF[NODE_READY])
    assert result.get(timeout=30) is False
