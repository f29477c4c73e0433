"""The watcher loop's timers and retry backoff (pure), on a clock the test moves."""

from __future__ import annotations

import pytest

from vpcnet.watcher.timers import RETRY, SUMMARY, SWEEP, RetryBackoff, TimerQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_timers_fire_once_due_in_due_order() -> None:
    clock = Clock()
    timers = TimerQueue(clock)
    timers.schedule(SUMMARY, "n1", 2.0)
    timers.schedule(RETRY, "n2", 1.0)
    assert list(timers.pop_due()) == []
    clock.now += 1.0
    assert list(timers.pop_due()) == [(RETRY, "n2")]
    clock.now += 5.0
    assert list(timers.pop_due()) == [(SUMMARY, "n1")]
    assert list(timers.pop_due()) == []


def test_a_key_keeps_its_earliest_due_time() -> None:
    clock = Clock()
    timers = TimerQueue(clock)
    timers.schedule(RETRY, "n1", 5.0)
    timers.schedule(RETRY, "n1", 10.0)  # later: ignored
    timers.schedule(RETRY, "n1", 1.0)  # sooner: supersedes
    clock.now += 1.0
    assert list(timers.pop_due()) == [(RETRY, "n1")]
    clock.now += 10.0
    assert list(timers.pop_due()) == []  # the superseded entries do not fire


def test_kinds_and_nodes_are_separate_keys() -> None:
    clock = Clock()
    timers = TimerQueue(clock)
    for kind, node in ((RETRY, "n1"), (SUMMARY, "n1"), (RETRY, "n2"), (SWEEP, "")):
        timers.schedule(kind, node, 1.0)
    clock.now += 1.0
    assert list(timers.pop_due()) == [(RETRY, "n1"), (SUMMARY, "n1"), (RETRY, "n2"), (SWEEP, "")]


def test_a_timer_scheduled_during_a_pass_waits_for_the_next() -> None:
    clock = Clock()
    timers = TimerQueue(clock)
    timers.schedule(SWEEP, "", 0.0)
    fired = []
    for _, (kind, node) in zip(range(3), timers.pop_due(), strict=False):  # a bug: no end
        fired.append((kind, node))
        clock.now += 0.1
        timers.schedule(kind, node, 0.0)  # as the sweep reschedules itself
    assert fired == [(SWEEP, "")]
    assert list(timers.pop_due()) == [(SWEEP, "")]


def test_wait_time_is_until_the_next_timer_at_most_the_longest() -> None:
    clock = Clock()
    timers = TimerQueue(clock)
    assert timers.wait_time(0.5) == 0.5
    timers.schedule(RETRY, "n1", 0.2)
    assert timers.wait_time(0.5) == pytest.approx(0.2)
    clock.now += 1.0
    assert timers.wait_time(0.5) == 0.0


def test_clear_drops_every_timer() -> None:
    clock = Clock()
    timers = TimerQueue(clock)
    timers.schedule(RETRY, "n1", 1.0)
    timers.clear()
    timers.schedule(RETRY, "n1", 3.0)  # not held back by the dropped, earlier one
    clock.now += 1.0
    assert list(timers.pop_due()) == []
    clock.now += 2.0
    assert list(timers.pop_due()) == [(RETRY, "n1")]


def test_backoff_doubles_to_thirty_seconds_per_node_until_reset() -> None:
    backoff = RetryBackoff()
    assert [backoff.next_delay("n1") for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.next_delay("n2") == 1.0
    backoff.reset("n1")
    assert backoff.next_delay("n1") == 1.0
