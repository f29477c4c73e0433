"""The readiness probe's view of the agent's status file."""

from __future__ import annotations

from pathlib import Path

from vpcnet.agent.ipam import PoolStats
from vpcnet.agent.main import check_ready, write_status
from vpcnet.agent.redis_sync import AgentReport

STATS = PoolStats(total=10, free=7, assigned=3, cooldown=0)


def test_ready_and_fresh(tmp_path: Path) -> None:
    path = tmp_path / "run" / "status.json"
    write_status(path, AgentReport(True, 4, STATS, "1.0"), now=1000.0)
    ok, why = check_ready(path, max_age=30, now=1010.0)
    assert ok, why
    assert "generation 4" in why


def test_stale_heartbeat_fails(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_status(path, AgentReport(True, 4, STATS, "1.0"), now=1000.0)
    ok, why = check_ready(path, max_age=30, now=1031.0)
    assert not ok and "stalled" in why


def test_not_ready_reports_the_error(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_status(path, AgentReport(False, 0, STATS, "1.0", error="IMDS down"), now=1000.0)
    ok, why = check_ready(path, max_age=30, now=1000.0)
    assert not ok and "IMDS down" in why


def test_missing_file_fails(tmp_path: Path) -> None:
    ok, _ = check_ready(tmp_path / "nope.json", max_age=30, now=0.0)
    assert not ok
