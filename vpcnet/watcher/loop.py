"""The watcher process: Nodes in, deduplicated idempotent tasks out.

Threads feed one queue — the node list+watch (:class:`NodeSource`), the ``agent-ready``
channel and the leader elector (``vpcnet.watcher.inbox``) — and a single loop handles
every item and every due timer, so the watcher's state (node cache, what this leader
has acted on, timers) needs no locks.

The queue is first in, first out, except that an agent's ready report goes before the
node events waiting: it is the last hop of a join (node_ready takes the taint off), and
in a join storm the loop has a backlog of new nodes (taint, provisioning, label: ~20-45
ms each here), so a FIFO made the first nodes' node_ready wait until every node of the
storm had been looked at (1,000 nodes: ~22 s with no node ready). A report is about a
node the loop has looked at already (its provisioning was sent), so it never overtakes
what it depends on.

All replicas keep their node cache warm; only the Lease holder writes to Kubernetes or
enqueues, and it re-checks :meth:`LeaderElector.is_leader` right before each side
effect. What it does for a node is in ``vpcnet.watcher.actions``, how it enqueues in
``vpcnet.watcher.enqueue``, the status annotation in ``vpcnet.watcher.status``.
"""

from __future__ import annotations

import itertools
import queue
import threading

import structlog

from vpcnet.kube.client import KubeClient
from vpcnet.kube.leader import ElectionConfig, LeaderElector, make_identity
from vpcnet.kube.metrics import IS_LEADER, NODES, WATCH_EVENTS
from vpcnet.kube.source import NodeSource
from vpcnet.kube.types import NodeObj, NodeWatchEvent, WatchEventType
from vpcnet.kube.watchstate import AgentReadyListener, TaskSender, WatcherState
from vpcnet.settings import Settings
from vpcnet.watcher.actions import NodeActions
from vpcnet.watcher.decisions import PROVISION, READY
from vpcnet.watcher.enqueue import TaskEnqueuer
from vpcnet.watcher.inbox import AgentReady, CatchUp, Changed, Item, Leadership, Listed, Watched
from vpcnet.watcher.stats import WatcherStats
from vpcnet.watcher.status import StatusWriter
from vpcnet.watcher.timers import RETRY, SUMMARY, SWEEP, TimerQueue

log = structlog.get_logger("vpcnet.watcher")

# The longest the loop blocks on its queue: how soon it sees ``stop``.
_IDLE_WAIT = 0.5


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
        # (priority, arrival, item): agent-ready reports first, then arrival order.
        self._q: queue.PriorityQueue[tuple[int, int, Item]] = queue.PriorityQueue()
        self._arrivals = itertools.count()
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
                kube, config, on_change=lambda leading: self._put(Leadership(leading))
            )
        self._source = NodeSource(
            kube,
            on_list=lambda nodes: self._put(Listed(nodes)),
            on_event=lambda ev: self._put(Watched(ev)),
            watch_timeout=watch_timeout,
        )
        self._listener = AgentReadyListener(
            settings,
            on_ready=lambda node: self._put(AgentReady(node)),
            on_reconnect=lambda: self._put(CatchUp()),
            on_changed=lambda node: self._put(Changed(node)),
        )
        # Shared with the actions and the status writer: changed in place, never rebound.
        self._cache: dict[str, NodeObj] = {}
        self._synced = False
        self._leading = False
        self._timers = TimerQueue()
        enqueuer = TaskEnqueuer(state, sender, self.stats, self._timers, self._acting)
        self._nodes = NodeActions(
            kube, state, enqueuer, self._timers, self.stats, self._cache, self._acting
        )
        self._status = StatusWriter(
            kube, state, self._timers, self.stats, self._cache, self._acting
        )
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
        # Before any node is seen or the Lease sought: no join waits for the broker's
        # connection and Celery's lazy set-up on its first enqueue.
        self._sender.warm()
        self._source.start()
        self._listener.start()
        if self.elector is not None:
            self.elector.start()
        else:
            self._put(Leadership(True))
        try:
            while not stop.is_set():
                item = self._take(self._timers.wait_time(_IDLE_WAIT))
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

    def _put(self, item: Item) -> None:
        """From any thread: queue ``item`` for the loop (see the module doc's order)."""
        self._q.put((0 if isinstance(item, AgentReady) else 1, next(self._arrivals), item))

    def _take(self, timeout: float) -> Item | None:
        """The loop's next item, waiting at most ``timeout`` s (None: nothing came)."""
        try:
            return self._q.get(timeout=timeout)[2]
        except queue.Empty:
            return None

    def _handle(self, item: Item) -> None:
        if isinstance(item, Listed):
            self._on_listed(item.nodes)
        elif isinstance(item, Watched):
            self._on_event(item.event)
        elif isinstance(item, AgentReady):
            self._on_agent_ready(item.node)
        elif isinstance(item, Changed):
            self._status.soon(item.node)
        elif isinstance(item, CatchUp):
            if self._acting():
                self._nodes.catch_up_ready()
        elif isinstance(item, Leadership):
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
        self._nodes.new_term()
        self._timers.clear()
        if leading and self._synced:
            self._resync()

    def _on_listed(self, nodes: list[NodeObj]) -> None:
        old = dict(self._cache)
        self._cache.clear()
        self._cache.update((n.name, n) for n in nodes)
        self._synced = True
        NODES.set(len(self._cache))
        if self._acting():
            for name in old.keys() - self._cache.keys():
                self._nodes.on_deleted(old[name])  # deleted while our watch was down
            self._resync()
        self.stats.lists += 1

    def _on_event(self, event: NodeWatchEvent) -> None:
        if event.type is WatchEventType.BOOKMARK:  # no change of a node up to its version
            self.stats.last_resource_version = event.resource_version or self.stats.last_resource_version
            return
        self.stats.events += 1
        WATCH_EVENTS.labels(event.type.value).inc()
        node = event.node
        if node is None:
            return
        if event.type is WatchEventType.DELETED:
            self._cache.pop(node.name, None)
            if self._acting():
                self._nodes.on_deleted(node)
        else:
            self._cache[node.name] = node
            if self._acting():
                self._nodes.look(node)
                self._status.soon(node.name)
        NODES.set(len(self._cache))
        self.stats.last_resource_version = event.resource_version

    def _on_agent_ready(self, name: str) -> None:
        node = self._cache.get(name)
        if node is not None and self._acting():
            self._nodes.on_agent_ready(node)
        self._status.soon(name)

    def _resync(self) -> None:
        """Look at every node (new term, relist), then at nodes gone from Kubernetes."""
        if not self._nodes.consider_all():
            return
        self._nodes.release_orphans()
        self._status.sweep()
        self.stats.resyncs += 1

    # ------------------------------------------------------------------ timers

    def _run_due_timers(self) -> None:
        for kind, name in self._timers.pop_due():
            if kind == SWEEP:
                if self._acting():
                    self._status.sweep()
                continue
            node = self._cache.get(name)
            if node is None or not self._acting():
                continue
            if kind == RETRY:
                self._nodes.look(node)
            elif kind == PROVISION:
                self._nodes.provision_lapsed(node)
            elif kind == SUMMARY:
                self._status.refresh([name])
            elif kind == READY:
                self._nodes.ready_lapsed(node)
            # A lapsed demand claim needs nothing: a new demand report goes through at once.
