"""The control plane's Celery task names and queues, and which queue each task runs on.

The names are the wire protocol between the watcher, beat, the scans and the workers
(a message names its task and queue; renaming one strands what is already queued), so
they live here once. Pure: no Celery or kombu import, so the control layer's scans and
the watcher can name a task without loading Celery's machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
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

# Tasks whose first argument is a node name.
NODE_TASKS = frozenset({PROVISION_NODE, RELEASE_NODE, NODE_READY})
