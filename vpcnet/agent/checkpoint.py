"""The agent's local checkpoint: its pool and assignments, written atomically.

Redis is a mirror; this file is what lets the agent restart (or run while Redis is
down) without handing an IP out twice. A write is temp file + fdatasync + rename +
directory fsync (``vpcnet.atomicfile``), so a crash leaves either the old or the new
file, never a torn one, and a write that returned is on disk: the agent programs a
pod's network only after the checkpoint holding its IP was written.

Loading is tolerant of a missing file (first start) and strict on a corrupt one: a
checkpoint that exists but does not parse raises ``CheckpointError`` instead of
silently starting from an empty pool (which could reuse IPs that pods hold).

``durable()`` is the payload this process last wrote, i.e. known to be on disk: what
may be told to others as settled (``release-ok`` names only IPs it holds as released,
see ``vpcnet.agent.redis_sync``). A loaded file does not count: the agent's first
pass writes (and syncs) its own before confirming anything.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from vpcnet.atomicfile import Sync, atomic_write_bytes
from vpcnet.errors import CheckpointError

FORMAT_VERSION = 1


class Snapshotting(Protocol):
    """What the group-committing writer needs (``vpcnet.agent.ipam.Ipam`` is one)."""

    @property
    def generation(self) -> int: ...

    def snapshot(self) -> tuple[int, dict[str, Any]]: ...


class Checkpoint:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._written_generation = -1
        self._durable: Mapping[str, Any] | None = None
        self.writes = 0  # for tests and the benchmark breakdown

    def load(self) -> dict[str, Any] | None:
        """The saved payload, None when there is no checkpoint yet."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise CheckpointError(f"cannot read checkpoint {self.path}: {e}") from e
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"corrupt checkpoint {self.path}: {e}") from e
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint {self.path} has an unsupported format "
                f"{doc.get('format') if isinstance(doc, dict) else type(doc).__name__!r}"
            )
        payload = doc.get("payload")
        if not isinstance(payload, dict):
            raise CheckpointError(f"checkpoint {self.path} has no payload object")
        return payload

    def write(self, payload: Mapping[str, Any]) -> None:
        """Replace the checkpoint atomically and durably."""
        doc = {"format": FORMAT_VERSION, "written_at": time.time(), "payload": payload}
        data = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        try:
            # fdatasync (data and size) is enough: mkstemp creates the file 0600. The
            # directory fsync makes the rename itself durable before this returns.
            atomic_write_bytes(self.path, data, 0o600, sync=Sync.DATA, dir_mode=0o700)
        except OSError as e:
            raise CheckpointError(f"cannot write checkpoint {self.path}: {e}") from e
        self._durable = payload  # callers never change a payload once written
        self.writes += 1

    def durable(self) -> Mapping[str, Any] | None:
        """The payload last written by this process (on disk), None before the first."""
        return self._durable

    def sync(self, source: Snapshotting) -> None:
        """Return once ``source``'s state as of this call is on disk.

        Group commit: callers queue on one lock; whoever gets it writes the newest
        snapshot, which covers every caller whose change came before it, so 200
        concurrent ADDs cost a handful of fsyncs, not 200.
        """
        wanted = source.generation
        with self._lock:
            if self._written_generation >= wanted:
                return
            generation, payload = source.snapshot()
            self.write(payload)
            self._written_generation = generation
