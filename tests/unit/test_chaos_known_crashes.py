"""Which worker exits the chaos run may file as the known upstream kombu crash.

The sample is a real worker log (tests/unit/data/celery_broker_loss_crash.log): a
``celery -A workers worker`` holding one ETA'd task whose redis-server was killed -9.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from vpcnet_sim.embedded.known_crashes import (
    KOMBU_RESTORE_AFTER_BROKER_LOSS,
    KnownCrash,
    Outage,
    judge,
    match_known_crash,
)

SAMPLE = (Path(__file__).parent / "data" / "celery_broker_loss_crash.log").read_text()


def _records() -> list[dict[str, object]]:
    return [json.loads(line) for line in SAMPLE.splitlines()]


def _log(records: list[dict[str, object]]) -> str:
    return "\n".join(json.dumps(r) for r in records)


def _crash_time() -> float:
    stamp = str(_records()[-1]["timestamp"])
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_the_real_crash_is_recognised_with_its_time() -> None:
    banner = "celery@vm v5.7.0 (collider)\n[tasks]\n  . vpcnet.gc_enis\n"
    got = match_known_crash("worker-0", banner + SAMPLE)
    assert got == KnownCrash("worker-0", _crash_time(), KOMBU_RESTORE_AFTER_BROKER_LOSS)


def test_lines_logged_while_the_worker_shuts_down_do_not_hide_it() -> None:
    after = {"component": "worker", "event": "Error on stopping Gossip: AttributeError(...)",
             "level": "error", "logger": "celery.bootsteps", "timestamp": "2026-12-01T20:39:52.53Z"}
    assert match_known_crash("worker-0", SAMPLE + "\n" + json.dumps(after)) is not None


def test_another_nonetype_attribute_error_is_not_it() -> None:
    # What the old check ("Unrecoverable error: AttributeError" and "'NoneType' object"
    # anywhere in the tail) accepted: any NoneType bug, vpcnet's own included.
    records = _records()
    crash = dict(records[-1])
    crash["event"] = "Unrecoverable error: AttributeError(\"'NoneType' object has no attribute 'ipam'\")"
    crash["exception"] = ('Traceback (most recent call last):\n  File "/x/vpcnet/control/provision.py", '
                          "line 9, in pass_\nAttributeError: 'NoneType' object has no attribute 'ipam'")
    assert match_known_crash("worker-0", _log([*records[:-1], crash])) is None


def test_the_same_message_from_another_place_is_not_it() -> None:
    records = _records()
    crash = dict(records[-1])
    crash["exception"] = str(crash["exception"]).replace("in restore_unacked_once", "in something_else")
    assert match_known_crash("worker-0", _log([*records[:-1], crash])) is None


def test_without_a_lost_broker_connection_it_is_not_it() -> None:
    records = [r for r in _records() if not str(r["event"]).startswith("consumer: Connection to broker lost")]
    assert match_known_crash("worker-0", _log(records)) is None


def test_a_crash_of_an_earlier_run_does_not_excuse_this_exit() -> None:
    records = _records()
    ready = next(r for r in records if str(r["event"]).endswith(" ready."))
    exited_otherwise: dict[str, object] = {"component": "worker", "event": "Unrecoverable error: RuntimeError('boom')",
                        "exception": "Traceback ...\nRuntimeError: boom", "level": "critical",
                        "logger": "celery.worker", "timestamp": "2026-12-01T20:45:00Z"}
    assert match_known_crash("worker-0", _log([*records, ready, exited_otherwise])) is None
    assert match_known_crash("worker-0", _log([*records, ready])) is None  # no crash at all


@pytest.mark.parametrize(
    ("outages", "problem"),
    [
        ([Outage(100.0, 101.0)], ""),
        ([Outage(10.0, 11.0), Outage(100.0, 100.2)], ""),  # logged soon after Redis came back
        ([Outage(10.0, 11.0), Outage(200.0, 201.0)], "outside every Redis outage"),
        ([Outage(102.0, 103.0)], "outside every Redis outage"),  # before Redis went down
        ([], "outside every Redis outage"),
    ],
)
def test_a_known_crash_needs_an_outage(outages: list[Outage], problem: str) -> None:
    crash = KnownCrash("worker-1", 101.5, KOMBU_RESTORE_AFTER_BROKER_LOSS)
    got = judge([crash], outages)
    assert (got == []) if not problem else (len(got) == 1 and problem in got[0]), got


def test_a_worker_crashes_at_most_once_per_outage() -> None:
    outages = [Outage(100.0, 101.0), Outage(200.0, 201.0)]
    once_each = [KnownCrash("worker-0", 100.5, KOMBU_RESTORE_AFTER_BROKER_LOSS),
                 KnownCrash("worker-1", 100.6, KOMBU_RESTORE_AFTER_BROKER_LOSS),
                 KnownCrash("worker-0", 200.5, KOMBU_RESTORE_AFTER_BROKER_LOSS)]
    assert judge(once_each, outages) == []
    twice = [*once_each, KnownCrash("worker-0", 101.2, KOMBU_RESTORE_AFTER_BROKER_LOSS)]
    assert judge(twice, outages) == ["worker-0 crashed 2 times in Redis outage 0"]
