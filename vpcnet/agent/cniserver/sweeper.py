"""Sweeping the spool: every DEL the plugin spooled while the agent was unreachable.

At start and every few seconds, each spooled DEL runs on its own, under the locks a
DEL from the plugin takes: one that fails (a netlink errno, a full disk) is logged and
kept for the next sweep; a file that is no DEL is quarantined by ``Spool``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from vpcnet.agent.cniserver.locks import Gate, KeyLocks
from vpcnet.agent.cniserver.spool import Spool
from vpcnet.agent.ipam import AttachmentKey

log = logging.getLogger("vpcnet.agent.cni")

PENDING_SCAN_SECONDS = 5.0


class SpoolSweeper:
    """Replays the spool's DELs with ``replay`` (1 if it ran the key's DEL, else 0)."""

    def __init__(
        self, spool: Spool, replay: Callable[[AttachmentKey], int], gate: Gate, keys: KeyLocks
    ) -> None:
        self.spool = spool
        self._replay = replay
        self._gate = gate
        self._keys = keys
        self._stop = threading.Event()

    def drain(self, gated: bool) -> int:
        """Replay every spooled DEL; ``gated=False`` when the caller holds the gate exclusively."""
        done = 0
        for path in self.spool.entries():
            try:
                key = self.spool.key_of(path)
                if key is None:
                    continue
                if gated:
                    with self._gate.shared(), self._keys.hold(key):
                        done += self._replay(key)
                else:  # the caller holds the gate exclusively
                    done += self._replay(key)
            except Exception as e:
                # One entry's failure stops neither the others nor the server; its
                # file stays, so the IP stays held until a later sweep replays it.
                log.error("replaying spooled DEL %s failed (kept, retried): %s", path, e)
        return done

    def start(self) -> None:
        """Sweep every ``PENDING_SCAN_SECONDS`` on a thread of its own, until ``stop``."""
        threading.Thread(target=self._loop, name="cni-pending", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(PENDING_SCAN_SECONDS):
            try:
                self.drain(gated=True)
            except Exception:  # never end the sweeps: spooled DELs hold IPs
                log.exception("replaying spooled DELs failed (retrying)")
