"""The newest store version this agent programmed, kept on the node (invariant 7).

Redis can go back in time (a replica promoted without the last writes, a restored
backup): the node's keys then show a lower generation of the same epoch, or the same
generation with another write id. Only the agent can notice, because only it remembers
what it programmed: the mark lives in a file next to the IPAM checkpoint (written by the
same atomic temp + fsync + rename writer) so an agent restart does not forget it.

A rollback seen in an epoch is remembered (``rollback``) and reported in the agent's
record until the control plane rotates the epoch; the agent never lowers its mark within
an epoch. A new epoch is a new history: the mark starts over from it, and the epoch left
behind is remembered, so that a store restored to a state of that older history (a
backup from before the rotation) is a rollback too, not a new history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from vpcnet.agent.checkpoint import Checkpoint
from vpcnet.errors import CheckpointError
from vpcnet.state.records import StoreVersion

log = logging.getLogger(__name__)

HISTORY_SUFFIX = ".store-version"
RETIRED_KEPT = 16  # epochs left behind that a restored store could bring back


@dataclass(frozen=True, slots=True)
class HistoryMark:
    highest: StoreVersion = StoreVersion()  # newest version programmed in its epoch
    rollback: str = ""  # the epoch in which the store was seen going back, or empty
    retired: tuple[str, ...] = ()  # epochs this agent left for a newer one, newest last


def observe(mark: HistoryMark, current: StoreVersion) -> HistoryMark:
    """The mark after reading ``current`` from the store."""
    if current.rolled_back_from(mark.highest) or (current.epoch and current.epoch in mark.retired):
        return HistoryMark(mark.highest, current.epoch or mark.rollback, mark.retired)
    if current.epoch != mark.highest.epoch:
        # A new history: nothing of the old one applies, but it must not come back.
        left = (mark.highest.epoch,) if mark.highest.epoch else ()
        return HistoryMark(current, "", (*mark.retired, *left)[-RETIRED_KEPT:])
    if current.generation > mark.highest.generation:
        return HistoryMark(current, mark.rollback, mark.retired)
    return mark


class HistoryFile:
    """The mark on disk. A missing or unreadable file is an empty mark: the worst case
    is a rollback left unreported, never a pod disturbed (the mark decides no host state)."""

    def __init__(self, checkpoint_path: str | Path) -> None:
        path = Path(checkpoint_path)
        self._file = Checkpoint(path.with_name(path.name + HISTORY_SUFFIX))
        self._saved: HistoryMark | None = None

    @property
    def path(self) -> Path:
        return self._file.path

    def load(self) -> HistoryMark:
        try:
            payload = self._file.load()
        except CheckpointError as e:
            log.error("store-version mark unreadable, starting without one: %s", e)
            payload = None
        if payload is None:
            mark = HistoryMark()
        else:
            try:
                mark = HistoryMark(
                    StoreVersion(
                        str(payload["epoch"]), int(payload["generation"]), str(payload["write_id"])
                    ),
                    str(payload.get("rollback", "")),
                    tuple(str(e) for e in payload.get("retired", ())),
                )
            except (KeyError, TypeError, ValueError) as e:
                log.error("store-version mark malformed, starting without one: %r", e)
                mark = HistoryMark()
        self._saved = mark
        return mark

    def save(self, mark: HistoryMark) -> None:
        """Write the mark if it changed (once per programmed write, not per pass)."""
        if mark == self._saved:
            return
        self._file.write(
            {
                "epoch": mark.highest.epoch,
                "generation": mark.highest.generation,
                "write_id": mark.highest.write_id,
                "rollback": mark.rollback,
                "retired": list(mark.retired),
            }
        )
        self._saved = mark
