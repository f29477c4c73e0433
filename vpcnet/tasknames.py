"""The control plane's Celery task names and queues, and which queue each task runs on.

The names are the wire protocol between the watcher, beat, the scans and the workers
(a message names its task and queue; renaming one strands what is already queued), so
they live here once. Pure: no Celery or kombu import, so the control layer's scans and
the watcher can name a task without loading Celery's machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

PROVISION_NODE = "vpcnet.provision_node"
RELEASE_NODE = "vpcnet.release_node"
NODE_READY = "vpcnet.node_ready"
RECONCILE_ALL = "vpcnet.reconcile_all"
WARM_POOL = "vpcnet.warm_pool"
GC_ENIS = "vpcnet.gc_enis"
REFRESH_LIMITS = "vpcnet.refresh_limits"

# Every task that calls EC2; its pace is set by the shared EC2 rate limiter.
EC2_QUEUE = "ec2"
# Work that must not wait behind a join storm's provisioning: node_ready (no EC2 call)
# and beat's scans, which only read and enqueue per-node tasks.
SCAN_QUEUE = "vpcnet"
QUEUES = (EC2_QUEUE, SCAN_QUEUE)

QUEUE_OF: Mapping[str, str] = MappingProxyType({
    PROVISION_NODE: EC2_QUEUE,
    RELEASE_NODE: EC2_QUEUE,
    GC_ENIS: EC2_QUEUE,
    REFRESH_LIMITS: EC2_QUEUE,
    NODE_READY: SCAN_QUEUE,
    RECONCILE_ALL: SCAN_QUEUE,
    WARM_POOL: SCAN_QUEUE,
})
TASKS = tuple(QUEUE_OF)


@dataclass(frozen=True)
class WorkerPool:
    """One kind of worker process: the queues it consumes (``celery worker -Q``) and its
    threads (None: ``VPCNET_WORKER_CONCURRENCY``)."""

    name: str
    queues: tuple[str, ...]
    concurrency: int | None = None

    def args(self) -> list[str]:
        """The ``celery -A workers worker`` arguments that make a worker this pool."""
        out = ["-Q", ",".join(self.queues)]
        if self.concurrency is not None:
            out += ["--concurrency", str(self.concurrency)]
        return out


# Which worker process consumes which queue. A Celery worker has one pool of threads for
# every queue it consumes, and with acks late and a prefetch of one per thread it takes
# no message at all while its threads are busy: a node_ready that shares a worker with a
# join storm's provisioning waits for a provisioning task to end, whatever its queue.
# Celery has no concurrency per queue (its maintainers' answer: one worker per queue,
# celery/celery#1599), so the scan queue gets a worker process of its own with a few
# threads (node_ready takes milliseconds; beat's scans are one at a time), and the EC2
# worker consumes only the EC2 queue. Each pool has pods of its own (Deployments
# vpcnet-workers and vpcnet-scan-workers; docker-compose: workers and scan-workers).
EC2_WORKERS = WorkerPool("ec2", (EC2_QUEUE,))
SCAN_WORKERS = WorkerPool("scan", (SCAN_QUEUE,), concurrency=4)
WORKER_POOLS = (EC2_WORKERS, SCAN_WORKERS)

# Tasks whose first argument is a node name.
NODE_TASKS = frozenset({PROVISION_NODE, RELEASE_NODE, NODE_READY})
