"""Work a scan found: tasks to enqueue (the scans stay free of Celery; the task layer sends)."""

from __future__ import annotations

from dataclasses import dataclass

PROVISION_NODE = "vpcnet.provision_node"
RELEASE_NODE = "vpcnet.release_node"
NODE_READY = "vpcnet.node_ready"


@dataclass(frozen=True, slots=True)
class Followup:
    task: str
    args: tuple[str, ...]
    why: str = ""
