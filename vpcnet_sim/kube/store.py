"""In-memory object store with etcd-like resourceVersions and a bounded watch history.

One global counter orders every write, as etcd's revision does. Each write appends a
``Change`` to a history window of ``history`` entries; a watch may resume from any
resourceVersion still covered by the window (``floor`` <= rv), older ones are answered
with 410 Expired. Stored objects are never mutated after ``commit``: readers may hand
them out (and serialize them) without copying.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped kinds


@dataclass(slots=True)
class Change:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    storage: str
    namespace: str
    obj: Obj  # the stored object after the change (the final state for DELETED)
    prev: Obj | None  # the object before the change (None for ADDED)
    # serialized watch lines, per (apiVersion, event type), shared by all watchers
    encoded: dict[tuple[str, str], bytes] = field(default_factory=dict)


class _RvView:
    """Sequence view of the history's resourceVersions, for bisect."""

    def __init__(self, history: deque[Change]) -> None:
        self._history = history

    def __len__(self) -> int:
        return len(self._history)

    def __getitem__(self, i: int) -> int:
        return self._history[i].rv


class Store:
    def __init__(self, history: int = 1000, initial_rv: int = 1) -> None:
        if history < 1:
            raise ValueError("history must be >= 1")
        self.lock = threading.Condition(threading.RLock())
        self.rv = initial_rv
        self.floor = initial_rv
        self.closed = False
        self._window = history
        self._history: deque[Change] = deque()
        self._objects: dict[str, dict[Key, Obj]] = {}

    # --- reads (callers hold ``lock`` when they need a consistent view) -------------

    def get(self, storage: str, namespace: str, name: str) -> Obj | None:
        return self._objects.get(storage, {}).get((namespace, name))

    def items(self, storage: str, namespace: str | None = None) -> list[Obj]:
        """Objects of a storage sorted by (namespace, name), as etcd lists keys."""
        objects = self._objects.get(storage, {})
        keys = sorted(k for k in objects if namespace is None or k[0] == namespace)
        return [objects[k] for k in keys]

    def count(self, storage: str) -> int:
        return len(self._objects.get(storage, {}))

    # --- writes -------------------------------------------------------------------

    def commit(self, kind: str, storage: str, namespace: str, name: str, obj: Obj,
               prev: Obj | None) -> Obj:
        """Store ``obj`` (ADDED/MODIFIED) or remove the key (DELETED) at the next rv.

        ``obj`` must be a fresh dict whose ``metadata`` is not shared with a stored
        object: commit stamps the resourceVersion into it.
        """
        with self.lock:
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            objects = self._objects.setdefault(storage, {})
            if kind == "DELETED":
                objects.pop((namespace, name), None)
            else:
                objects[(namespace, name)] = obj
            self._append(Change(self.rv, kind, storage, namespace, obj, prev))
            self.lock.notify_all()
            return obj

    def _append(self, change: Change) -> None:
        if len(self._history) >= self._window:
            self.floor = self._history.popleft().rv
        self._history.append(change)

    def compact(self) -> None:
        """Forget the whole history: every watch resuming from before now gets 410."""
        with self.lock:
            self.rv += 1
            self.floor = self.rv
            self._history.clear()
            self.lock.notify_all()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.lock.notify_all()

    # --- watch support -------------------------------------------------------------

    def changes_after(self, rv: int) -> tuple[list[Change] | None, int]:
        """Changes with resourceVersion > rv and the current rv; None if rv is too old.

        After consuming the changes a watcher is at the returned rv: every change up
        to it was in the list.
        """
        with self.lock:
            if rv < self.floor:
                return None, self.rv
            start = bisect.bisect_right(_RvView(self._history), rv)
            return list(itertools.islice(self._history, start, None)), self.rv

    def wait_for_change(self, rv: int, timeout: float) -> None:
        """Block until something newer than ``rv`` happened, the store closed, or timeout."""
        with self.lock:
            if self.rv <= rv and not self.closed:
                self.lock.wait(timeout)

    def snapshot(self, storage: str, namespace: str | None = None) -> tuple[list[Obj], int]:
        with self.lock:
            return self.items(storage, namespace), self.rv

    def all_objects(self) -> Iterator[tuple[str, Obj]]:
        with self.lock:
            for storage, objects in self._objects.items():
                for obj in list(objects.values()):
                    yield storage, obj
