"""The leader's acts on nodes, and its memory of what it did this term.

For each look at a node, :func:`~vpcnet.kube.nodeplan.plan_node` says what is needed;
this labels and taints the node, emits its warning Event and enqueues its tasks, and
remembers per node the projection it last considered and last enqueued provisioning
for, and the warning it last emitted. A failed act is retried with backoff. A new
leader treats every node as first seen: it trusts Redis for nodes that are already
ready and re-enqueues (deduplicated) the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog

from vpcnet.errors import VpcnetError
from vpcnet.kube.client import KubeClient
from vpcnet.kube.metrics import ACTION_ERRORS, NODE_WARNINGS
from vpcnet.kube.nodeplan import ControlView, NodePlan, plan_node, projection_of
from vpcnet.kube.types import EventType, NodeObj, TaintEffect
from vpcnet.kube.watchstate import WatcherState
from vpcnet.tasknames import NODE_READY, PROVISION_NODE, RELEASE_NODE
from vpcnet.watcher.decisions import (
    Enqueue,
    awaiting_ready,
    awaits_ready,
    instance_of_deleted,
    orphan_candidates,
    plan_demand,
    plan_provision,
    plan_ready,
    plan_release,
    plan_trailing_provision,
    warning_key,
)
from vpcnet.watcher.enqueue import TaskEnqueuer
from vpcnet.watcher.stats import WatcherStats
from vpcnet.watcher.timers import RETRY, RetryBackoff, TimerQueue
from vpcnet.wellknown import NOT_READY_TAINT

log = structlog.get_logger("vpcnet.watcher")


class NodeActions:
    def __init__(
        self,
        kube: KubeClient,
        state: WatcherState,
        enqueuer: TaskEnqueuer,
        timers: TimerQueue,
        stats: WatcherStats,
        cache: Mapping[str, NodeObj],
        acting: Callable[[], bool],
    ) -> None:
        self._kube = kube
        self._state = state
        self._enqueuer = enqueuer
        self._timers = timers
        self._stats = stats
        self._cache = cache  # the loop's node cache (the loop alone changes it)
        self._acting = acting  # leads right now: checked before each side effect
        # Per node, what this leader has done: projection last considered, projection
        # last enqueued for provisioning, warning last emitted.
        self._seen: dict[str, str] = {}
        self._sent: dict[str, str] = {}
        self._warned: dict[str, tuple[str, str]] = {}
        self._backoff = RetryBackoff()

    def new_term(self) -> None:
        """A new term starts from scratch: everything is first seen again."""
        self._seen.clear()
        self._sent.clear()
        self._warned.clear()

    def view(self, name: str) -> ControlView | None:
        try:
            return self._state.view(name)
        except VpcnetError as e:
            log.warning("state.unavailable", node=name, error=str(e))
            ACTION_ERRORS.labels("read_state").inc()
            self._retry_later(name)
            return None

    def look(self, node: NodeObj) -> None:
        """Consider the node with vpcnet's current view of it."""
        self.consider(node, self.view(node.name))

    def consider_all(self) -> bool:
        """Consider every cached node, their views read at once; False when Redis could
        not be read (each node is retried later)."""
        try:
            views = self._state.views(self._cache)
        except VpcnetError as e:
            log.warning("state.unavailable", error=str(e))
            ACTION_ERRORS.labels("read_state").inc()
            for name in self._cache:
                self._retry_later(name)
            return False
        for name, node in self._cache.items():
            self.consider(node, views[name])
        return True

    def consider(self, node: NodeObj, view: ControlView | None) -> None:
        if view is None or not self._acting():
            return
        name = node.name
        plan = plan_node(
            node,
            first_sight=name not in self._seen,
            last_projection=self._seen.get(name),
            view=view,
        )
        if plan.warning is not None:
            self._warn(node, plan)
            return
        self._warned.pop(name, None)
        if plan.empty:
            self._seen[name] = plan.projection
            return
        ok = True
        # The taint goes on before any task is sent (no node_ready may race it); the
        # instance-id label, which no task needs, after: a join's provisioning does not
        # wait for that patch's round trip.
        try:
            if plan.add_taint:
                self._kube.ensure_taint(name, NOT_READY_TAINT, TaintEffect.NO_SCHEDULE)
                log.info("node.tainted", node=name, taint=NOT_READY_TAINT)
        except VpcnetError as e:
            ok = False
            ACTION_ERRORS.labels("patch_node").inc()
            log.warning("node.patch_failed", node=name, error=str(e))
        if plan.provision is not None:
            ok = self._enqueue_provision(node, plan_provision(node)) and ok
        if plan.node_ready:
            ok = self.enqueue_ready(name) and ok
        try:
            if plan.labels:
                self._kube.set_labels(name, plan.labels)
        except VpcnetError as e:
            ok = False
            ACTION_ERRORS.labels("patch_node").inc()
            log.warning("node.patch_failed", node=name, error=str(e))
        if ok:
            self._seen[name] = plan.projection
            self._backoff.reset(name)
        else:
            self._retry_later(name)

    def _warn(self, node: NodeObj, plan: NodePlan) -> None:
        assert plan.warning is not None
        name = node.name
        self._seen.pop(name, None)  # once fixed, the node is new to us
        key = warning_key(node, plan.warning)
        if self._warned.get(name) == key:
            return
        try:
            self._kube.emit_event(
                name, plan.warning.reason, plan.warning.message, EventType.WARNING
            )
        except VpcnetError as e:
            ACTION_ERRORS.labels("emit_event").inc()
            log.warning("node.event_failed", node=name, error=str(e))
            self._retry_later(name)
            return
        self._warned[name] = key
        self._stats.warnings += 1
        NODE_WARNINGS.labels(plan.warning.reason).inc()
        log.warning(
            "node.unusable", node=name, reason=plan.warning.reason, provider_id=node.provider_id
        )

    def _enqueue_provision(self, node: NodeObj, request: Enqueue) -> bool:
        sent = self._enqueuer.enqueue(PROVISION_NODE, request)
        if sent:  # a duplicate's claim may be a predecessor's: its trailing edge sends
            self._sent[node.name] = projection_of(node)
        return sent is not None

    def enqueue_ready(self, name: str) -> bool:
        return self._enqueuer.enqueue(NODE_READY, plan_ready(name)) is not None

    def on_agent_ready(self, node: NodeObj) -> None:
        """The agent reported ready: the taint comes off, or ADDs waiting for addresses
        get a provisioning pass."""
        if awaits_ready(node):
            self.enqueue_ready(node.name)
        else:
            self._on_demand(node)

    def _on_demand(self, node: NodeObj) -> None:
        try:
            waiting, at = self._state.demand(node.name)
        except VpcnetError as e:
            log.warning("state.unavailable", node=node.name, error=str(e))
            return
        request = plan_demand(node, waiting, at)
        if request is not None:
            self._enqueuer.enqueue(PROVISION_NODE, request)

    def on_deleted(self, node: NodeObj) -> None:
        name = node.name
        for d in (self._seen, self._sent, self._warned):
            d.pop(name, None)
        self._backoff.reset(name)
        instance_id = instance_of_deleted(node)
        if instance_id is None:
            view = self.view(name)
            instance_id = view.instance_id if view else ""
        if not instance_id:
            return  # vpcnet never provisioned it: nothing to release
        self._enqueuer.enqueue(RELEASE_NODE, plan_release(name, instance_id))

    def release_orphans(self) -> None:
        """Nodes vpcnet holds state for that Kubernetes no longer has (deleted while no
        watcher was watching), each confirmed absent by a direct read first."""
        try:
            orphans = orphan_candidates(self._state.known_nodes(), self._cache.keys())
        except VpcnetError as e:
            log.warning("state.unavailable", error=str(e))
            return
        for name in orphans:
            try:
                if self._kube.read_node(name) is not None:
                    continue
            except VpcnetError as e:
                log.warning("node.read_failed", node=name, error=str(e))
                continue
            view = self.view(name)
            if view is not None and view.instance_id and self._acting():
                log.info("node.orphaned", node=name, instance_id=view.instance_id)
                self._enqueuer.enqueue(RELEASE_NODE, plan_release(name, view.instance_id))

    def catch_up_ready(self) -> None:
        """Tainted nodes whose agent reported ready while no message reached us."""
        try:
            views = self._state.views(awaiting_ready(self._cache))
        except VpcnetError as e:
            log.warning("state.unavailable", error=str(e))
            return
        for name, view in views.items():
            if view.agent_ready:
                self.enqueue_ready(name)

    def provision_lapsed(self, node: NodeObj) -> None:
        """The provision claim lapsed (trailing edge)."""
        request = plan_trailing_provision(node, self._sent.get(node.name))
        if request is not None:
            self._enqueue_provision(node, request)

    def ready_lapsed(self, node: NodeObj) -> None:
        """The ready claim lapsed: enqueue again if the taint is still on and the agent
        still ready."""
        if awaits_ready(node):
            view = self.view(node.name)
            if view is not None and view.agent_ready:
                self.enqueue_ready(node.name)

    def _retry_later(self, node: str) -> None:
        self._timers.schedule(RETRY, node, self._backoff.next_delay(node))
