"""The node write's store version against a real redis-server: the epoch is created when
the store has none, kept while the history goes on, and rotated in the same Lua step
when the agent's report shows the store went back (invariant 7)."""

from __future__ import annotations

import ipaddress

import pytest
import redis

from vpcnet.domain import EniRecord
from vpcnet.state.control import ControlState
from vpcnet.state.records import AgentRecord, StoreVersion

ENI = EniRecord("eni-1", "0a:00:00:00:00:01", 1, "s", ipaddress.IPv4Network("10.0.16.0/20"),
                ipaddress.IPv4Address("10.0.16.4"), ips=(ipaddress.IPv4Address("10.0.16.5"),))


def write(state: ControlState) -> StoreVersion:
    with state.locked("n1") as token:
        state.write_node("n1", {"phase": "provisioned"}, [ENI], lock_token=token)
    st = state.read_node("n1")
    assert st is not None
    return st.version


def report(client: redis.Redis[bytes], state: ControlState, rec: AgentRecord) -> None:
    client.hset(state.node_keys("n1").agent, mapping=rec.to_redis())


def test_the_epoch_lives_as_long_as_the_history(redis_client: redis.Redis[bytes], cluster_name: str) -> None:
    state = ControlState(redis_client, cluster_name)
    v1 = write(state)
    assert v1.generation == 1 and len(v1.epoch) == 32 and v1.write_id
    report(redis_client, state, AgentRecord(ready=True, epoch=v1.epoch, generation=1, write_id=v1.write_id))
    v2 = write(state)
    assert (v2.epoch, v2.generation) == (v1.epoch, 2) and v2.write_id != v1.write_id

    # The node's keys are lost (FLUSHALL, a store rebuilt empty): a new history.
    redis_client.delete(*state.node_keys("n1").all())
    v3 = write(state)
    assert v3.generation == 1 and v3.epoch != v1.epoch


def test_a_rollback_the_agent_reports_rotates_the_epoch(redis_client: redis.Redis[bytes], cluster_name: str) -> None:
    state = ControlState(redis_client, cluster_name)
    v1 = write(state)
    write(state)
    v3 = write(state)
    # The agent programmed generation 3; the store went back to generation 1.
    report(redis_client, state, AgentRecord(ready=True, epoch=v3.epoch, generation=3, write_id=v3.write_id))
    redis_client.hset(state.node_keys("n1").node, mapping={"generation": 1, "write_id": v1.write_id})
    v4 = write(state)
    assert v4.epoch != v3.epoch and v4.generation == 1

    # The agent names the epoch as rolled back (its own report was lost with the writes).
    report(redis_client, state, AgentRecord(ready=True, epoch=v4.epoch, generation=1,
                                            write_id=v4.write_id, rollback=v4.epoch))
    v5 = write(state)
    assert v5.epoch != v4.epoch and v5.generation == 1
    # A rollback flag of an older epoch does not rotate again.
    v6 = write(state)
    assert (v6.epoch, v6.generation) == (v5.epoch, 2)


def test_callers_cannot_forge_the_store_version(redis_client: redis.Redis[bytes], cluster_name: str) -> None:
    state = ControlState(redis_client, cluster_name)
    for field in ("epoch", "generation", "write_id"):
        with pytest.raises(ValueError, match=field):
            state.write_node("n1", {field: "x"}, [ENI], lock_token="")
        with pytest.raises(ValueError, match=field):
            state.set_fields("n1", {field: "x"})
    assert state.read_node("n1") is None  # nothing half-done
