"""The watcher's counters, for logs and tests."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class WatcherStats:
    """Counters for logs and tests (the loop is the only writer)."""

    lists: int = 0
    resyncs: int = 0  # full passes over every node done while leading
    events: int = 0
    last_resource_version: str = ""  # of the last watch event handled, BOOKMARKs included
    enqueued: Counter[str] = field(default_factory=Counter)
    deduplicated: Counter[str] = field(default_factory=Counter)
    warnings: int = 0
    summary_checks: int = 0  # passes comparing vpcnet's view with the annotation
    summaries_written: int = 0
    leading: bool = False
