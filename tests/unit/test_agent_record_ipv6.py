"""The agent's report counts its IPv6 pod addresses: ``AgentRecord.assigned6`` survives
the ``agent`` hash, and a hash an older agent wrote (no such field) reads 0."""

from __future__ import annotations

from vpcnet.state.records import AgentRecord


def test_assigned6_round_trips_through_the_agent_hash() -> None:
    rec = AgentRecord(ready=True, epoch="e1", generation=3, free=5, assigned=2, assigned6=7)
    wire = {k: str(v).encode() for k, v in rec.to_redis().items()}  # as HGETALL returns it
    assert AgentRecord.from_redis(wire).assigned6 == 7
    assert AgentRecord.from_redis(wire) == rec


def test_a_record_without_the_field_reads_0() -> None:
    old = {b"ready": b"1", b"epoch": b"e1", b"generation": b"3", b"free": b"5",
           b"assigned": b"2", b"cooldown": b"0", b"version": b"0.1.0", b"error": b""}
    rec = AgentRecord.from_redis(old)
    assert rec.assigned6 == 0 and rec.assigned == 2 and rec.ready
