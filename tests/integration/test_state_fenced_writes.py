"""A pass's store writes against a real redis-server: the intent before acting, the
write-back (fields, ENIs and release requests in one Lua step) and a write-back of
release requests alone, each refused once the node's lock is lost."""

from __future__ import annotations

import ipaddress

import pytest
import redis

from vpcnet.domain import EniRecord
from vpcnet.errors import LockHeld
from vpcnet.state.control import ControlState

ENI = EniRecord("eni-1", "0a:00:00:00:00:01", 1, "s", ipaddress.IPv4Network("10.0.16.0/20"),
                ipaddress.IPv4Address("10.0.16.4"), ips=(ipaddress.IPv4Address("10.0.16.5"),))
IP5, IP6 = ipaddress.IPv4Address("10.0.16.5"), ipaddress.IPv4Address("10.0.16.6")


def members(client: redis.Redis[bytes], key: str) -> set[str]:
    return {m.decode() for m in client.smembers(key)}


def test_the_write_back_adds_release_requests_in_the_same_step(
    redis_client: redis.Redis[bytes], cluster_name: str,
) -> None:
    state = ControlState(redis_client, cluster_name)
    k = state.node_keys("n1")
    redis_client.sadd(k.release_req, str(IP5))
    redis_client.sadd(k.release_ok, str(IP5))
    with state.locked("n1") as token:
        gen = state.write_node("n1", {"phase": "provisioned"}, [ENI], lock_token=token,
                               released=[IP5], release_requests=[IP6])
    assert gen == 1
    assert members(redis_client, k.release_req) == {str(IP6)}
    assert members(redis_client, k.release_ok) == set()


def test_intent_and_release_requests_are_refused_without_the_lock(
    redis_client: redis.Redis[bytes], cluster_name: str,
) -> None:
    state = ControlState(redis_client, cluster_name)
    k = state.node_keys("n1")
    with state.locked("n1") as token:
        state.record_intent("n1", {"pass_epoch": "1.000", "phase": "provisioning"}, lock_token=token)
        state.request_release("n1", [IP5], lock_token=token)
    st = state.read_node("n1")
    assert st is not None and st.record.pass_epoch == "1.000"
    assert "n1" in state.list_nodes()
    assert members(redis_client, k.release_req) == {str(IP5)}

    lease = state.lease_lock("n1", 30)
    with pytest.raises(LockHeld):
        state.record_intent("n1", {"pass_epoch": "2.000"}, lock_token="not-" + lease.token)
    with pytest.raises(LockHeld):
        state.request_release("n1", [IP6], lock_token="not-" + lease.token)
    lease.release()
    after = state.read_node("n1")
    assert after is not None and after.record.pass_epoch == "1.000"
    assert members(redis_client, k.release_req) == {str(IP5)}


def test_the_intent_cannot_forge_the_store_version(
    redis_client: redis.Redis[bytes], cluster_name: str,
) -> None:
    state = ControlState(redis_client, cluster_name)
    with state.locked("n1") as token, pytest.raises(ValueError, match="stamped"):
        state.record_intent("n1", {"generation": "9"}, lock_token=token)
    assert state.read_node("n1") is None
