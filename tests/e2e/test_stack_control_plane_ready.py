"""The embedded stack's control plane is ready when its workers consume and a watcher holds
the Lease, not when the processes are merely alive: a benchmark that registers nodes
earlier counts the processes' start (imports, Celery's second of mingle) as join time."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import Celery

from vpcnet.settings import Settings
from vpcnet_sim.embedded.stack import EmbeddedStack, StackOptions

pytestmark = pytest.mark.timeout(180)


def test_ready_means_the_workers_answer_and_a_watcher_holds_the_lease(tmp_path: Path) -> None:
    from kubernetes import client as k8s

    stack = EmbeddedStack(StackOptions(workdir=tmp_path, cluster="ready", beat=False,
                                       flower=False, with_netns=False, worker_processes=2,
                                       worker_concurrency=2))
    app = None
    try:
        stack.start_services()
        stack.start_control_plane()
        stack.wait_processes_up()
        stack.wait_control_plane_ready()
        # At once, nothing waited for: each worker answers on the broker...
        app = Celery("ready-probe", broker=stack.redis.url, set_as_current=False)
        replies = {name for reply in app.control.ping(timeout=1.0) for name in reply}
        assert replies == {"worker0@ready", "worker1@ready"}
        # ...and the watcher holds the Lease it acts under.
        defaults = Settings()
        lease = k8s.CoordinationV1Api(stack.kube.api_client()).read_namespaced_lease(
            defaults.lease_name, defaults.lease_namespace)
        assert lease.spec.holder_identity
    finally:
        if app is not None:
            app.close()
        stack.stop()
