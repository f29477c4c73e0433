"""The watcher process: Nodes in, deduplicated idempotent tasks out.

Threads feed one queue — the node list+watch (:class:`NodeSource`), the ``agent-ready``
channel and the leader elector — and a single loop handles every item, so the watcher's
state (node cache, what this leader has acted on, timers) needs no locks.

All replicas keep their node cache warm; only the Lease holder writes to Kubernetes or
enqueues, and it re-checks :meth:`LeaderElector.is_leader` right before each side
effect. A new leader treats every node as first seen: it trusts Redis for nodes that
are already ready and re-enqueues (deduplicated) the rest.

Per node and action, a Redis claim (``dedup:<node>:<action>``, value = instance id)
lets one enqueue through per window; a change that arrives while the claim holds is
enqueued once when it lapses (trailing edge), so a storm of updates costs O(1) tasks
and no change is lost.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace

import structlog

from vpcnet.domain import parse_provider_id
from vpcnet.errors import VpcnetError
from vpcnet.kube.client import KubeClient
from vpcnet.kube.leader import ElectionConfig, LeaderElector, make_identity
from vpcnet.kube.metrics import (
    ACTION_ERRORS,
    IS_LEADER,
    NODE_WARNINGS,
    NODES,
    TASKS_DEDUPLICATED,
    TASKS_ENQUEUED,
    WATCH_EVENTS,
)
from vpcnet.kube.nodeplan import ControlView, NodePlan, plan_node, projection_of
from vpcnet.kube.source import NodeSource
from vpcnet.kube.types import (
    NOT_READY_TAINT,
    STATUS_ANNOTATION,
    EventType,
    NodeObj,
    NodeWatchEvent,
    TaintEffect,
    WatchEventType,
)
from vpcnet.kube.watchstate import (
    NODE_READY,
    PROVISION_NODE,
    RELEASE_NODE,
    AgentReadyListener,
    TaskSender,
    WatcherState,
)
from vpcnet.settings import Settings

log = structlog.get_logger("vpcnet.watcher")

_RETRY_MIN, _RETRY_MAX = 1.0, 30.0
# A node's status annotation follows Redis within a second of a change it is told about
# (coalescing bursts), and within a sweep for changes nobody announces.
_SUMMARY_DELAY = 1.0
_SUMMARY_SWEEP = 30.0


# Items the feeder threads put on the loop's queue.
@dataclass(frozen=True, slots=True)
class _Listed:
    nodes: list[NodeObj]


@dataclass(frozen=True, slots=True)
class _Watched:
    event: NodeWatchEvent


@dataclass(frozen=True, slots=True)
class _AgentReady:
    node: str


@dataclass(frozen=True, slots=True)
class _Changed:
    node: str


@dataclass(frozen=True, slots=True)
class _CatchUp:
    pass


@dataclass(frozen=True, slots=True)
class _Leadership:
    leading: bool


_Item = _Listed | _Watched | _AgentReady | _Changed | _CatchUp | _Leadership


@dataclass
class WatcherStats:
    """Counters for logs and tests (the loop is the only writer)."""

    lists: int = 0
    resyncs: int = 0  # full passes over every node done while leading
    events: int = 0
    last_resource_version: str = ""  # of the last watch event handled
    enqueued: Counter[str] = field(default_factory=Counter)
    deduplicated: Counter[str] = field(default_factory=Counter)
    warnings: int = 0
    summary_checks: int = 0  # passes comparing vpcnet's view with the annotation
    summaries_written: int = 0
    leading: bool = False


class Watcher:
    def __init__(
        self,
        settings: Settings,
        kube: KubeClient,
        state: WatcherState,
        sender: TaskSender,
        *,
        leader_election: bool = True,
        identity: str | None = None,
        watch_timeout: int = 300,
    ) -> None:
        self.settings = settings
        self._kube = kube
        self._state = state
        self._sender = sender
        self._q: queue.Queue[_Item] = queue.Queue()
        self.stats = WatcherStats()
        self.elector: LeaderElector | None = None
        if leader_election:
            config = ElectionConfig(
                name=settings.lease_name,
                namespace=settings.lease_namespace,
                identity=identity or make_identity(),
                lease_duration=settings.lease_duration_seconds,
            )
            self.elector = LeaderElector(
                kube, config, on_change=lambda leading: self._q.put(_Leadership(leading))
            )
        self._source = NodeSource(
            kube,
            on_list=lambda nodes: self._q.put(_Listed(nodes)),
            on_event=lambda ev: self._q.put(_Watched(ev)),
            watch_timeout=watch_timeout,
        )
        self._listener = AgentReadyListener(
            settings,
            on_ready=lambda node: self._q.put(_AgentReady(node)),
            on_reconnect=lambda: self._q.put(_CatchUp()),
            on_changed=lambda node: self._q.put(_Changed(node)),
        )
        self._cache: dict[str, NodeObj] = {}
        self._synced = False
        self._leading = False
        # Per node, what this leader has done: projection last considered, projection
        # last enqueued for provisioning, warning last emitted.
        self._seen: dict[str, str] = {}
        self._sent: dict[str, str] = {}
        self._warned: dict[str, tuple[str, str]] = {}
        self._timers: list[tuple[float, int, str, str]] = []
        self._timer_due: dict[tuple[str, str], float] = {}
        self._retry_delay: dict[str, float] = {}
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, leader_election: bool = True, identity: str | None = None
    ) -> Watcher:
        kube = KubeClient.from_settings(settings, component="vpcnet-watcher")
        return cls(
            settings,
            kube,
            WatcherState(settings),
            TaskSender(settings),
            leader_election=leader_election,
            identity=identity,
        )

    @property
    def identity(self) -> str:
        return self.elector.identity if self.elector else "standalone"

    # ------------------------------------------------------------------ lifecycle

    def run(self, stop: threading.Event) -> None:
        """Watch and act until ``stop`` is set (then hand the Lease over)."""
        log.info("watcher.start", identity=self.identity, cluster=self.settings.cluster_name)
        self._source.start()
        self._listener.start()
        if self.elector is not None:
            self.elector.start()
        else:
            self._q.put(_Leadership(True))
        try:
            while not stop.is_set():
                try:
                    item: _Item | None = self._q.get(timeout=self._until_next_timer())
                except queue.Empty:
                    item = None
                if item is not None:
                    self._handle(item)
                self._run_due_timers()
        finally:
            self._source.stop()
            self._listener.stop()
            if self.elector is not None:
                self.elector.stop()
            IS_LEADER.set(0)
            log.info("watcher.stop", identity=self.identity)

    def start(self) -> None:
        """Run in a background thread (tests, embedding)."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run, args=(self._stop,), name="watcher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        self._sender.close()
        self._state.close()
        self._kube.close()

    # ------------------------------------------------------------------ dispatch

    def _handle(self, item: _Item) -> None:
        if isinstance(item, _Listed):
            self._on_listed(item.nodes)
        elif isinstance(item, _Watched):
            self._on_event(item.event)
        elif isinstance(item, _AgentReady):
            self._on_agent_ready(item.node)
        elif isinstance(item, _Changed):
            self._summary_soon(item.node)
        elif isinstance(item, _CatchUp):
            if self._acting():
                self._catch_up_ready()
        elif isinstance(item, _Leadership):
            self._on_leadership(item.leading)

    def _acting(self) -> bool:
        """Lead, per the elector's own clock, right now (not per a queued notice)."""
        if not self._leading:
            return False
        return self.elector is None or self.elector.is_leader()

    def _on_leadership(self, leading: bool) -> None:
        self._leading = leading
        self.stats.leading = leading
        IS_LEADER.set(1 if leading else 0)
        # A new term starts from scratch: everything is first seen again.
        self._seen.clear()
        self._sent.clear()
        self._warned.clear()
        self._timers.clear()
        self._timer_due.clear()
        if leading and self._synced:
            self._resync()

    def _on_listed(self, nodes: list[NodeObj]) -> None:
        old = self._cache
        self._cache = {n.name: n for n in nodes}
        self._synced = True
        NODES.set(len(self._cache))
        if self._acting():
            for name in old.keys() - self._cache.keys():
                self._on_deleted(old[name])  # deleted while our watch was down
            self._resync()
        self.stats.lists += 1

    def _on_event(self, event: NodeWatchEvent) -> None:
        self.stats.events += 1
        WATCH_EVENTS.labels(event.type.value).inc()
        node = event.node
        if node is None:
            return
        if event.type is WatchEventType.DELETED:
            self._cache.pop(node.name, None)
            if self._acting():
                self._on_deleted(node)
        else:
            self._cache[node.name] = node
            if self._acting():
                self._consider(node, self._view(node.name))
                self._summary_soon(node.name)
        NODES.set(len(self._cache))
        self.stats.last_resource_version = event.resource_version

    def _on_agent_ready(self, name: str) -> None:
        node = self._cache.get(name)
        if node is not None and self._acting():
            if node.has_taint(NOT_READY_TAINT):
                self._enqueue_ready(name)
            else:
                self._on_demand(node)
        self._summary_soon(name)

    def _on_demand(self, node: NodeObj) -> None:
        """ADDs wait on a ready node for its pool to grow: one provisioning pass plans for
        all of them. Its claim is per demand report (``at``): a new report goes through
        at once, a repeated message about the same one is deduplicated."""
        try:
            waiting, at = self._state.demand(node.name)
        except VpcnetError as e:
            log.warning("state.unavailable", node=node.name, error=str(e))
            return
        if waiting <= 0:
            return
        try:
            az, instance_id = parse_provider_id(node.provider_id)
        except ValueError:
            return
        self._enqueue(PROVISION_NODE, node.name, "demand", at or "-", (node.name, instance_id, az))

    # ------------------------------------------------------------------ acting

    def _view(self, name: str) -> ControlView | None:
        try:
            return self._state.view(name)
        except VpcnetError as e:
            log.warning("state.unavailable", node=name, error=str(e))
            ACTION_ERRORS.labels("read_state").inc()
            self._retry_later(name)
            return None

    def _resync(self) -> None:
        """Look at every node (new term, relist), then at nodes gone from Kubernetes."""
        try:
            views = self._state.views(self._cache)
        except VpcnetError as e:
            log.warning("state.unavailable", error=str(e))
            ACTION_ERRORS.labels("read_state").inc()
            for name in self._cache:
                self._retry_later(name)
            return
        for name, node in self._cache.items():
            self._consider(node, views[name])
        self._release_orphans()
        self._refresh_summaries(list(self._cache))
        self._schedule("sweep", "", _SUMMARY_SWEEP)
        self.stats.resyncs += 1

    def _consider(self, node: NodeObj, view: ControlView | None) -> None:
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
        try:
            if plan.labels:
                self._kube.set_labels(name, plan.labels)
            if plan.add_taint:
                self._kube.ensure_taint(name, NOT_READY_TAINT, TaintEffect.NO_SCHEDULE)
                log.info("node.tainted", node=name, taint=NOT_READY_TAINT)
        except VpcnetError as e:
            ok = False
            ACTION_ERRORS.labels("patch_node").inc()
            log.warning("node.patch_failed", node=name, error=str(e))
        if plan.provision is not None:
            ok = self._enqueue_provision(node) and ok
        if plan.node_ready:
            ok = self._enqueue_ready(name) and ok
        if ok:
            self._seen[name] = plan.projection
            self._retry_delay.pop(name, None)
        else:
            self._retry_later(name)

    def _warn(self, node: NodeObj, plan: NodePlan) -> None:
        assert plan.warning is not None
        name = node.name
        self._seen.pop(name, None)  # once fixed, the node is new to us
        key = (plan.warning.reason, node.provider_id)
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
        self.stats.warnings += 1
        NODE_WARNINGS.labels(plan.warning.reason).inc()
        log.warning(
            "node.unusable", node=name, reason=plan.warning.reason, provider_id=node.provider_id
        )

    def _enqueue_provision(self, node: NodeObj) -> bool:
        az, instance_id = parse_provider_id(node.provider_id)
        sent = self._enqueue(
            PROVISION_NODE, node.name, "provision", instance_id, (node.name, instance_id, az)
        )
        if sent:
            self._sent[node.name] = projection_of(node)
        return sent is not None

    def _enqueue_ready(self, name: str) -> bool:
        return self._enqueue(NODE_READY, name, "ready", "1", (name,)) is not None

    def _on_deleted(self, node: NodeObj) -> None:
        name = node.name
        for d in (self._seen, self._sent, self._warned, self._retry_delay):
            d.pop(name, None)
        try:
            instance_id = parse_provider_id(node.provider_id)[1]
        except ValueError:
            view = self._view(name)
            instance_id = view.instance_id if view else ""
        if not instance_id:
            return  # vpcnet never provisioned it: nothing to release
        self._enqueue(RELEASE_NODE, name, "release", instance_id, (name, instance_id))

    def _release_orphans(self) -> None:
        """Nodes vpcnet holds state for that Kubernetes no longer has (deleted while no
        watcher was watching). Each is confirmed absent by a direct read first: a release
        of a live node would take its pods' addresses away."""
        try:
            orphans = self._state.known_nodes() - self._cache.keys()
        except VpcnetError as e:
            log.warning("state.unavailable", error=str(e))
            return
        for name in sorted(orphans):
            try:
                if self._kube.read_node(name) is not None:
                    continue
            except VpcnetError as e:
                log.warning("node.read_failed", node=name, error=str(e))
                continue
            view = self._view(name)
            if view is not None and view.instance_id and self._acting():
                log.info("node.orphaned", node=name, instance_id=view.instance_id)
                self._enqueue(
                    RELEASE_NODE, name, "release", view.instance_id, (name, view.instance_id)
                )

    def _catch_up_ready(self) -> None:
        """Tainted nodes whose agent reported ready while no message reached us."""
        tainted = [n for n, node in self._cache.items() if node.has_taint(NOT_READY_TAINT)]
        try:
            views = self._state.views(tainted)
        except VpcnetError as e:
            log.warning("state.unavailable", error=str(e))
            return
        for name, view in views.items():
            if view.agent_ready:
                self._enqueue_ready(name)

    def _enqueue(
        self, task: str, node: str, action: str, value: str, args: tuple[str, ...]
    ) -> str | None:
        """Claim then send; None on failure (the caller retries). A claim held by an
        equal earlier enqueue counts as done and schedules the trailing re-check."""
        if not self._acting():
            return None
        try:
            claim = self._state.claim(node, action, value)
        except VpcnetError as e:
            ACTION_ERRORS.labels("claim").inc()
            log.warning("task.claim_failed", node=node, task=task, error=str(e))
            return None
        if not claim.won:
            self.stats.deduplicated[task] += 1
            TASKS_DEDUPLICATED.labels(task).inc()
            if action != "release":
                self._schedule(action, node, claim.remaining)
            return ""
        try:
            task_id = self._sender.send(task, args)
        except VpcnetError as e:
            ACTION_ERRORS.labels("enqueue").inc()
            log.warning("task.enqueue_failed", node=node, task=task, error=str(e))
            try:
                self._state.drop_claim(node, action)
            except VpcnetError:
                pass  # the claim lapses with its TTL
            return None
        self.stats.enqueued[task] += 1
        TASKS_ENQUEUED.labels(task).inc()
        log.info("task.enqueued", node=node, task=task, task_id=task_id, args=list(args))
        return task_id

    # ------------------------------------------------------------------ timers

    def _schedule(self, kind: str, node: str, delay: float) -> None:
        due = time.monotonic() + delay
        key = (kind, node)
        if key in self._timer_due and self._timer_due[key] <= due:
            return
        self._timer_due[key] = due
        heapq.heappush(self._timers, (due, next(self._seq), kind, node))

    def _retry_later(self, node: str) -> None:
        delay = self._retry_delay.get(node, _RETRY_MIN)
        self._retry_delay[node] = min(_RETRY_MAX, delay * 2)
        self._schedule("retry", node, delay)

    def _until_next_timer(self) -> float:
        if not self._timers:
            return 0.5
        return max(0.0, min(0.5, self._timers[0][0] - time.monotonic()))

    def _run_due_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            due, _, kind, name = heapq.heappop(self._timers)
            if self._timer_due.get((kind, name)) != due:
                continue  # superseded by an earlier timer
            del self._timer_due[(kind, name)]
            if kind == "sweep":
                if self._acting():
                    self._refresh_summaries(list(self._cache))
                    self._schedule("sweep", "", _SUMMARY_SWEEP)
                continue
            node = self._cache.get(name)
            if node is None or not self._acting():
                continue
            if kind == "retry":
                self._consider(node, self._view(name))
            elif kind == "provision":
                # Trailing edge: enqueue once more only if what matters changed since
                # this leader last enqueued (or it never did: the claim was a
                # predecessor's).
                if projection_of(node) != self._sent.get(name):
                    self._consider_trailing_provision(node)
            elif kind == "summary":
                self._refresh_summaries([name])
            elif kind == "ready":
                if node.has_taint(NOT_READY_TAINT):
                    view = self._view(name)
                    if view is not None and view.agent_ready:
                        self._enqueue_ready(name)

    def _consider_trailing_provision(self, node: NodeObj) -> None:
        try:
            parse_provider_id(node.provider_id)
        except ValueError:
            return  # became unusable meanwhile; _consider warns about it
        self._enqueue_provision(node)

    # ------------------------------------------------------------------ status annotation

    def _summary_soon(self, name: str) -> None:
        if self._acting() and name in self._cache:
            self._schedule("summary", name, _SUMMARY_DELAY)

    def _refresh_summaries(self, names: list[str]) -> None:
        """Write ``vpcnet.io/status`` where vpcnet's view differs from the node's copy."""
        try:
            summaries = self._state.summaries(names)
        except VpcnetError as e:
            log.warning("state.unavailable", error=str(e))
            return
        self.stats.summary_checks += 1
        for name, summary in summaries.items():
            node = self._cache.get(name)
            if (
                summary is None
                or node is None
                or node.annotations.get(STATUS_ANNOTATION) == summary
            ):
                continue
            if not self._acting():
                return
            try:
                self._kube.set_annotations(name, {STATUS_ANNOTATION: summary})
            except VpcnetError as e:
                ACTION_ERRORS.labels("patch_node").inc()
                log.warning("node.status_failed", node=name, error=str(e))
                continue
            # Our own copy, until the watch brings the node back: no second write meanwhile.
            self._cache[name] = replace(
                node, annotations={**node.annotations, STATUS_ANNOTATION: summary}
            )
            self.stats.summaries_written += 1
