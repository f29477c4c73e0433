"""Worker exits the chaos run may file as a known upstream bug, and what it takes to be one.

Celery 5.7 / kombu 5.7: when the broker connection drops while a worker holds
unacknowledged messages (acks_late; an ETA'd retry is enough), the consumer closes the
already-collected connection, the channel tries to restore the messages through it, and
the worker exits on ``Unrecoverable error: AttributeError("'NoneType' object has no
attribute 'hostname'")`` raised in kombu's ``_connparams``. To vpcnet that is a worker
kill (its tasks come back after the visibility timeout). Reproduced outside the chaos
run: a worker holding one ETA task, its redis-server killed.

A worker exit counts as that crash only when all of this holds, else it is an unexpected
exit (a finding):

- its log, since its last ``ready.``, has the broker-lost warning followed by the
  critical record with exactly that message, whose traceback runs through kombu's
  ``restore_unacked_once`` and ``_connparams`` and ends in that AttributeError, and no
  critical record after it;
- the crash happened during a Redis outage the chaos itself caused (its log time between
  the stop and a few seconds after the restart);
- no worker crashed more than once in one outage.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

KOMBU_RESTORE_AFTER_BROKER_LOSS = "kombu-restore-unacked-after-broker-loss"

_READY_LOGGER = "celery.apps.worker"
_BROKER_LOST = "consumer: Connection to broker lost."
_CRASH_LOGGER = "celery.worker"
_CRASH_EVENT = "Unrecoverable error: AttributeError(\"'NoneType' object has no attribute 'hostname'\")"
_CRASH_FRAMES = ("kombu/transport/virtual/base.py", "in restore_unacked_once",
                 "kombu/transport/redis.py", "in _connparams")
_CRASH_LAST_LINE = "AttributeError: 'NoneType' object has no attribute 'hostname'"
# A worker notices the lost connection at once; a loaded machine may log it a bit later.
OUTAGE_SLACK_SECONDS = 5.0


@dataclass(frozen=True)
class KnownCrash:
    process: str
    at: float  # unix time of the worker's critical record
    signature: str


@dataclass(frozen=True)
class Outage:
    down_at: float  # unix time Redis was stopped or killed
    up_at: float  # unix time it answered again


def _records(log: str) -> list[dict[str, object]]:
    out = []
    for line in log.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # Celery's start-up banner is plain text
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _unix(stamp: object) -> float | None:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def match_known_crash(process: str, log: str) -> KnownCrash | None:
    """The known crash if the worker's log (its last run) ends the way it does."""
    records = _records(log)
    starts = [i for i, r in enumerate(records)
              if r.get("logger") == _READY_LOGGER and str(r.get("event", "")).endswith(" ready.")]
    run = records[starts[-1]:] if starts else records
    critical = [i for i, r in enumerate(run) if r.get("level") == "critical"]
    if not critical:
        return None
    i = critical[-1]
    crash = run[i]
    trace = str(crash.get("exception", ""))
    if (crash.get("logger") != _CRASH_LOGGER or crash.get("event") != _CRASH_EVENT
            or not all(f in trace for f in _CRASH_FRAMES)
            or trace.rstrip().splitlines()[-1:] != [_CRASH_LAST_LINE]):
        return None
    if not any(str(r.get("event", "")).startswith(_BROKER_LOST) for r in run[:i]):
        return None
    at = _unix(crash.get("timestamp"))
    if at is None:
        return None
    return KnownCrash(process, at, KOMBU_RESTORE_AFTER_BROKER_LOSS)


def outage_of(crash: KnownCrash, outages: Sequence[Outage]) -> int | None:
    """Index of the Redis outage the crash happened in, if any."""
    for n, o in enumerate(outages):
        if o.down_at <= crash.at <= o.up_at + OUTAGE_SLACK_SECONDS:
            return n
    return None


def judge(crashes: Sequence[KnownCrash], outages: Sequence[Outage]) -> list[str]:
    """Problems with the crashes filed as known (empty: every one is what it claims)."""
    problems = []
    per_outage: Counter[tuple[int, str]] = Counter()
    for c in crashes:
        n = outage_of(c, outages)
        if n is None:
            problems.append(f"{c.process} crashed ({c.signature}) at {c.at:.3f}, outside every Redis outage")
        else:
            per_outage[(n, c.process)] += 1
    for (n, process), count in sorted(per_outage.items()):
        if count > 1:
            problems.append(f"{process} crashed {count} times in Redis outage {n}")
    return problems


__all__ = ["KOMBU_RESTORE_AFTER_BROKER_LOSS", "KnownCrash", "Outage", "judge", "match_known_crash", "outage_of"]
