"""The worker Deployments and docker-compose.yml run the worker pools of
``vpcnet.tasknames.WORKER_POOLS``: every queue is consumed by exactly one kind of worker,
the EC2 worker does not consume the scan queue (node_ready would wait behind provisioning
for its threads), and the scan worker has its own few threads."""

from __future__ import annotations

from tests.unit.manifests_render import BASE, find, pod_spec, render
from tests.unit.test_compose import config as compose_config
from tests.unit.test_manifests import containers
from vpcnet.tasknames import EC2_WORKERS, QUEUES, SCAN_QUEUE, SCAN_WORKERS, WORKER_POOLS


def _queues_and_threads(args: list[str]) -> tuple[tuple[str, ...], int | None]:
    queues: tuple[str, ...] = ()
    threads = None
    for i, a in enumerate(args):
        if a in ("-Q", "--queues"):
            queues = tuple(args[i + 1].split(","))
        elif a.startswith("--concurrency="):
            threads = int(a.split("=", 1)[1])
        elif a in ("-c", "--concurrency"):
            threads = int(args[i + 1])
    return queues, threads


def _pools(commands: list[list[str]]) -> list[tuple[tuple[str, ...], int | None]]:
    """(queues, threads) of each ``celery -A workers worker`` command; without -Q a
    worker consumes every queue, which none may."""
    workers = [c for c in commands if c[:4] == ["celery", "-A", "workers", "worker"]]
    return sorted(_queues_and_threads(c) for c in workers)


WANT = sorted((p.queues, p.concurrency) for p in WORKER_POOLS)


def test_every_queue_has_exactly_one_pool_and_the_scan_queue_its_own() -> None:
    consumed = [q for pool in WORKER_POOLS for q in pool.queues]
    assert sorted(consumed) == sorted(QUEUES)
    assert SCAN_WORKERS.queues == (SCAN_QUEUE,) and SCAN_QUEUE not in EC2_WORKERS.queues
    assert SCAN_WORKERS.concurrency is not None and SCAN_WORKERS.concurrency >= 1


WORKER_DEPLOYMENTS = ("vpcnet-workers", "vpcnet-scan-workers")


def test_the_worker_deployments_run_one_worker_per_pool() -> None:
    docs = render(BASE)
    specs = [pod_spec(find(docs, "Deployment", name)) for name in WORKER_DEPLOYMENTS]
    assert _pools([c["args"] for spec in specs for c in containers(spec)]) == WANT
    # One pool per pod: a pod's scrape annotation names one metrics port (see
    # test_metrics_dashboard), and each pool scales on its own.
    assert all(len(_pools([c["args"] for c in containers(spec)])) == 1 for spec in specs)
    workers = [c for spec in specs for c in containers(spec) if c["args"][:4] == ["celery", "-A", "workers", "worker"]]
    # Each its own Celery hostname and metrics port (host network: pods on one node share
    # the ports, so an EC2 and a scan worker can share a node).
    assert len({a.split("@")[0] for c in workers for a in c["args"] if a.startswith("--hostname=")}) == len(workers)
    ports = [p["containerPort"] for c in workers for p in c["ports"]]
    assert len(set(ports)) == len(ports)


def test_compose_runs_one_worker_per_pool() -> None:
    services = compose_config()["services"]
    assert _pools([svc["command"] for svc in services.values()]) == WANT


def test_pool_args() -> None:
    assert EC2_WORKERS.args() == ["-Q", "ec2"]
    assert SCAN_WORKERS.args() == ["-Q", "vpcnet", "--concurrency", str(SCAN_WORKERS.concurrency)]
