"""Work a scan found: tasks to enqueue (the scans stay free of Celery; the task layer sends)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Followup:
    task: str  # a name of ``vpcnet.tasknames``
    args: tuple[str, ...]
    why: str = ""
