"""Store versions, the agent's history mark and its typed record (invariant 7). Pure."""

from __future__ import annotations

from pathlib import Path

from vpcnet.agent.history import HistoryFile, HistoryMark, observe
from vpcnet.state.records import AgentRecord, StoreVersion

E1, E2 = "e1" * 16, "e2" * 16


def test_same_write_needs_the_same_epoch_generation_and_write_id() -> None:
    v = StoreVersion(E1, 3, "w3")
    assert v.same_write(StoreVersion(E1, 3, "w3"))
    assert not v.same_write(StoreVersion(E2, 3, "w3")), "another history"
    assert not v.same_write(StoreVersion(E1, 3, "w3b")), "the same number written again after a rollback"
    assert not v.same_write(StoreVersion(E1, 4, "w3"))
    assert not StoreVersion().same_write(StoreVersion()), "nothing written is no proof"
    assert StoreVersion("", 2).same_write(StoreVersion("", 2)), "schema-1 data: by generation"
    assert not StoreVersion("", 2).same_write(StoreVersion(E1, 2, "w"))


def test_rollback_is_only_judged_within_one_history() -> None:
    seen = StoreVersion(E1, 7, "w7")
    assert StoreVersion(E1, 5, "w5").rolled_back_from(seen)
    assert StoreVersion(E1, 7, "other").rolled_back_from(seen)
    assert not StoreVersion(E1, 7, "w7").rolled_back_from(seen)
    assert not StoreVersion(E1, 8, "w8").rolled_back_from(seen)
    assert not StoreVersion(E2, 1, "x").rolled_back_from(seen), "FLUSHALL: a new history"


def test_the_mark_never_goes_back_and_remembers_left_epochs() -> None:
    mark = observe(HistoryMark(), StoreVersion(E1, 1, "a"))
    mark = observe(mark, StoreVersion(E1, 2, "b"))
    assert mark == HistoryMark(StoreVersion(E1, 2, "b"))
    back = observe(mark, StoreVersion(E1, 1, "a"))
    assert back.highest == mark.highest and back.rollback == E1
    assert observe(back, StoreVersion(E1, 3, "c")).rollback == E1, "kept until the epoch rotates"
    rotated = observe(back, StoreVersion(E2, 1, "d"))
    assert rotated == HistoryMark(StoreVersion(E2, 1, "d"), "", (E1,))
    restored = observe(rotated, StoreVersion(E1, 2, "b"))  # a backup of the old history
    assert restored.highest == rotated.highest and restored.rollback == E1


def test_the_mark_survives_a_restart_and_a_bad_file_is_an_empty_mark(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint.json"
    mark = HistoryMark(StoreVersion(E2, 4, "w"), E2, (E1,))
    HistoryFile(checkpoint).save(mark)
    assert HistoryFile(checkpoint).load() == mark
    f = HistoryFile(checkpoint)
    f.path.write_text("{torn")
    assert f.load() == HistoryMark()


def test_agent_record_round_trips_and_tolerates_garbage() -> None:
    rec = AgentRecord(ready=True, epoch=E1, generation=3, write_id="w", rollback=E1,
                      heartbeat=1.5, free=4, assigned=2, cooldown=1, version="1.0", error="x")
    raw = {str(k).encode(): str(v).encode() for k, v in rec.to_redis().items()}
    assert AgentRecord.from_redis(raw) == rec
    junk = AgentRecord.from_redis({b"ready": b"yes", b"generation": b"x", b"free": b"5.0"})
    assert junk == AgentRecord(free=5)
    assert not junk.has_programmed(StoreVersion("", 0))
    assert rec.has_programmed(StoreVersion(E1, 3, "w"))
    assert not rec.has_programmed(StoreVersion(E1, 3, "w-after-rollback"))
