"""The created-at tag's one codec: what provisioning writes, GC and the audit read back."""

from __future__ import annotations

from vpcnet.control.view import created_at, created_at_tag
from vpcnet.wellknown import TAG_CREATED_AT


def test_round_trip_to_the_second() -> None:
    assert created_at_tag(1_700_000_000.9) == "2023-11-14T22:13:20Z"
    assert created_at({TAG_CREATED_AT: created_at_tag(1_700_000_000.0)}) == 1_700_000_000.0


def test_any_iso_8601_time_reads_and_a_zoneless_one_is_utc() -> None:
    assert created_at({TAG_CREATED_AT: "2023-11-14T23:13:20+01:00"}) == 1_700_000_000.0
    assert created_at({TAG_CREATED_AT: "2023-11-14T22:13:20"}) == 1_700_000_000.0


def test_absent_or_unreadable_is_none_not_zero() -> None:
    # The audit's old float() parse turned every tag into age 0: leaks went unseen.
    assert created_at({}) is None
    assert created_at({TAG_CREATED_AT: "yesterday"}) is None
    assert created_at({TAG_CREATED_AT: "1700000000.0"}) is None
