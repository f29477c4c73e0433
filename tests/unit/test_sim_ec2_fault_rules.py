"""Fault rules: next-N, rates, phases, and the snapshot the admin API shows."""

from __future__ import annotations

import pytest

from vpcnet_sim.ec2.faults import FaultInjector, FaultRule


def codes(fi: FaultInjector, action: str, n: int, *, after: bool = False) -> list[str | None]:
    out = []
    for _ in range(n):
        err = fi.pick(action, after=after)
        out.append(err.code if err else None)
    return out


def test_count_rule_expires() -> None:
    fi = FaultInjector(seed=1)
    fi.configure(rules=[FaultRule("AttachNetworkInterface", "InternalError", count=2)])
    assert codes(fi, "DescribeVpcs", 2) == [None, None]
    assert codes(fi, "AttachNetworkInterface", 3) == ["InternalError", "InternalError", None]
    assert fi.snapshot()["rules"][0]["remaining"] == 0


def test_phases_are_separate() -> None:
    fi = FaultInjector(seed=1)
    fi.configure(rules=[FaultRule("*", "InternalError", count=1, after=True)])
    assert codes(fi, "CreateNetworkInterface", 1) == [None]
    assert codes(fi, "CreateNetworkInterface", 2, after=True) == ["InternalError", None]


def test_rates_are_seeded_and_bounded() -> None:
    a, b = FaultInjector(seed=5), FaultInjector(seed=5)
    for fi in (a, b):
        fi.configure(rate_5xx=0.3)
    ra, rb = codes(a, "X", 200), codes(b, "X", 200)
    assert ra == rb
    failed = sum(c is not None for c in ra)
    assert 30 <= failed <= 90
    assert {c for c in ra if c} <= {"InternalError", "ServiceUnavailable"}


def test_status_of_injected_errors() -> None:
    assert FaultRule("A", "InternalError").error().status == 500
    assert FaultRule("A", "RequestLimitExceeded").error().status == 503
    assert FaultRule("A", "InvalidParameterValue").error().status == 400


def test_invalid_rate() -> None:
    with pytest.raises(ValueError):
        FaultInjector().configure(rate_5xx=2.0)
