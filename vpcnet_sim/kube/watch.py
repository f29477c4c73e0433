"""Watch streams: the newline-delimited JSON events of ``?watch=true``.

Semantics of the apiserver's watch cache:
- no resourceVersion (or "0"): synthetic ADDED events for the current state, then changes;
- a resourceVersion: the changes after it, from the history window; a version the
  window no longer covers gets one ``ERROR`` event carrying a 410 Expired Status;
- ``sendInitialEvents=true``: the current state, then a BOOKMARK annotated
  ``k8s.io/initial-events-end``;
- ``allowWatchBookmarks``: periodic BOOKMARKs and one before the timeout closes the watch;
- selector transitions: an object entering the selection is ADDED, leaving it DELETED.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from vpcnet_sim.kube import status
from vpcnet_sim.kube.registry import Registry, Selector, external
from vpcnet_sim.kube.store import Change, Obj

INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(frozen=True)
class WatchRequest:
    selector: Selector
    resource_version: str | None
    timeout: float
    bookmarks: bool
    send_initial_events: bool = False


def _line(event_type: str, obj: Obj) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


def error_line(err: status.ApiStatusError) -> bytes:
    return _line("ERROR", err.status())


class WatchStream:
    def __init__(self, registry: Registry, request: WatchRequest, *,
                 bookmark_interval: float, is_disconnected: Callable[[], bool],
                 poll_interval: float = 1.0) -> None:
        self.registry = registry
        self.request = request
        self.bookmark_interval = bookmark_interval
        self.is_disconnected = is_disconnected
        self.poll_interval = poll_interval
        rv = request.resource_version
        self._from_state = request.send_initial_events or rv in (None, "", "0")
        self._start = 0
        if not self._from_state:
            try:
                self._start = int(str(rv))
            except ValueError as e:
                raise status.bad_request(f"invalid resource version: {rv}") from e

    def _encode(self, change: Change, event_type: str) -> bytes:
        rt = self.request.selector.rt
        key = (rt.api_version, event_type)
        line = change.encoded.get(key)
        if line is None:
            if event_type == "DELETED" and change.type != "DELETED" and change.prev is not None:
                # left the selection: the previous content at this event's version
                prev = dict(change.prev, metadata=dict(change.prev["metadata"],
                                                       resourceVersion=str(change.rv)))
                obj = external(rt, prev)
            else:
                obj = external(rt, change.obj)
            line = _line(event_type, obj)
            change.encoded[key] = line
        return line

    def _bookmark(self, rv: int, annotations: dict[str, str] | None = None) -> bytes:
        rt = self.request.selector.rt
        meta: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
        if annotations:
            meta["annotations"] = annotations
        return _line("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta})

    def __iter__(self) -> Iterator[bytes]:
        store = self.registry.store
        selector = self.request.selector
        deadline = time.monotonic() + self.request.timeout
        if self._from_state:
            with store.lock:
                items, pos = store.items(selector.rt.storage, selector.namespace), store.rv
            for obj in items:
                if selector.matches(obj):
                    yield _line("ADDED", external(selector.rt, obj))
            if self.request.send_initial_events:
                yield self._bookmark(pos, {INITIAL_EVENTS_END: "true"})
        else:
            pos = self._start
        next_bookmark = time.monotonic() + self.bookmark_interval
        while True:
            changes, current = store.changes_after(pos)
            if changes is None:
                yield error_line(status.too_old_resource_version(pos, store.floor))
                return
            for change in changes:
                event_type = selector.event_for(change)
                if event_type is not None:
                    yield self._encode(change, event_type)
            pos = max(pos, current)
            now = time.monotonic()
            if store.closed or self.is_disconnected():
                return
            if now >= deadline:
                if self.request.bookmarks:
                    yield self._bookmark(pos)
                return
            if self.request.bookmarks and now >= next_bookmark:
                yield self._bookmark(pos)
                next_bookmark = now + self.bookmark_interval
            wait = min(deadline - now, self.poll_interval)
            if self.request.bookmarks:
                wait = min(wait, max(0.0, next_bookmark - now))
            store.wait_for_change(pos, wait)
