"""Prometheus metrics of the watcher (served by ``vpcnet watcher --metrics-port``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

WATCH_EVENTS = Counter(
    "vpcnet_watcher_events_total", "Node watch events handled, by type", ["type"]
)
RELISTS = Counter(
    "vpcnet_watcher_relists_total",
    "Full node lists, by cause (start, expired = 410 Gone, error)",
    ["cause"],
)
TASKS_ENQUEUED = Counter(
    "vpcnet_watcher_tasks_enqueued_total", "Tasks the watcher enqueued, by task", ["task"]
)
TASKS_DEDUPLICATED = Counter(
    "vpcnet_watcher_tasks_deduplicated_total",
    "Enqueues skipped because an equal task was enqueued within the dedup window",
    ["task"],
)
NODE_WARNINGS = Counter(
    "vpcnet_watcher_node_warnings_total",
    "Warning events about unusable nodes, by reason",
    ["reason"],
)
ACTION_ERRORS = Counter(
    "vpcnet_watcher_action_errors_total",
    "Failed writes or enqueues (retried), by action",
    ["action"],
)
IS_LEADER = Gauge("vpcnet_watcher_leader", "1 while this replica holds the watcher Lease")
NODES = Gauge("vpcnet_watcher_nodes", "Nodes in the watcher's cache")
