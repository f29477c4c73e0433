"""List+watch of Nodes in a thread (the informer loop, without the informer).

Delivers a full list first (and after every relist), then each watch event, in order,
to the callbacks. A 410 Gone relists at once; any other failure relists after an
exponential backoff with jitter. A server-side watch timeout just re-watches from the
last resourceVersion seen (bookmarks keep it fresh, so that rarely needs a relist).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import structlog

from vpcnet.errors import VpcnetError, WatchExpired
from vpcnet.kube.client import KubeClient, NodeWatch
from vpcnet.kube.metrics import RELISTS
from vpcnet.kube.types import NodeObj, NodeWatchEvent

log = structlog.get_logger("vpcnet.watcher")


class NodeSource:
    def __init__(
        self,
        kube: KubeClient,
        on_list: Callable[[list[NodeObj]], None],
        on_event: Callable[[NodeWatchEvent], None],
        *,
        watch_timeout: int = 300,
        min_backoff: float = 0.2,
        max_backoff: float = 30.0,
    ) -> None:
        self._kube = kube
        self._on_list = on_list
        self._on_event = on_event
        self._watch_timeout = watch_timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watch: NodeWatch | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="node-source", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            if self._watch is not None:
                self._watch.close()  # unblocks the reader at once
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        rv = ""
        cause = "start"
        delay = self._min_backoff
        while not self._stop.is_set():
            try:
                if not rv:
                    nodes, rv = self._kube.list_nodes()
                    RELISTS.labels(cause).inc()
                    log.info("nodes.listed", count=len(nodes), resource_version=rv, cause=cause)
                    self._on_list(nodes)
                rv, progressed = self._watch_from(rv)
                if progressed:
                    delay = self._min_backoff
                elif not self._stop.is_set():
                    # The server ended an empty watch at once: do not spin on it.
                    self._stop.wait(delay)
                    delay = self._next(delay)
            except WatchExpired:
                log.info("nodes.watch_expired", resource_version=rv)
                rv, cause = "", "expired"
            except VpcnetError as e:
                if self._stop.is_set():
                    return
                log.warning("nodes.watch_failed", error=str(e), retry_in=round(delay, 2))
                rv, cause = "", "error"
                self._stop.wait(delay)
                delay = self._next(delay)

    def _watch_from(self, rv: str) -> tuple[str, bool]:
        started = time.monotonic()
        events = 0
        watch = self._kube.watch_nodes(rv, timeout_seconds=self._watch_timeout)
        with self._lock:
            self._watch = watch
        try:
            if self._stop.is_set():
                return rv, False
            for event in watch:
                if self._stop.is_set():
                    break
                events += 1
                if event.resource_version:
                    rv = event.resource_version
                # BOOKMARKs too: their version says every change before it was delivered
                # (a consumer that tracks how far it has seen needs them, since the
                # version also moves for changes of other kinds: Leases, Events).
                self._on_event(event)
        finally:
            with self._lock:
                self._watch = None
            watch.close()
        return rv, events > 0 or time.monotonic() - started > 1.0

    def _next(self, delay: float) -> float:
        return min(self._max_backoff, delay * 2) * random.uniform(0.8, 1.2)
