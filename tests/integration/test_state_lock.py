"""The lock library against a real redis-server: ownership by token, extension that never
shortens, a lease that stays lost, and beat's hold-or-take."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from vpcnet.errors import LockHeld, StateError
from vpcnet.state.lock import RedisLock, new_token
from vpcnet_sim.embedded.procs import RedisServer, free_port, wait_for


@pytest.fixture
def lock(redis_client: redis.Redis[bytes], cluster_name: str) -> RedisLock:
    return RedisLock(redis_client, f"vpcnet:{{{cluster_name}}}:test-lock")


def test_one_holder_and_only_the_holder_releases(lock: RedisLock) -> None:
    lease = lock.acquire(10)
    assert lease is not None
    assert lock.acquire(10) is None
    assert not lock.release(new_token())  # another token frees nothing
    assert lock.held()
    lease.release()
    assert not lock.held()
    assert lock.acquire(10) is not None


def test_extending_never_shortens_the_lock(lock: RedisLock, redis_client: redis.Redis[bytes]) -> None:
    lease = lock.acquire(60)
    assert lease is not None
    lease.extend(1)  # the heartbeat's short TTL must not cut a fence's longer one
    assert redis_client.pttl(lock.key) > 50_000
    lease.fence(120)
    assert redis_client.pttl(lock.key) > 110_000


def test_a_lost_lease_stays_lost(lock: RedisLock, redis_client: redis.Redis[bytes]) -> None:
    lease = lock.acquire(60)
    assert lease is not None
    redis_client.set(lock.key, new_token())  # expired and taken by another worker
    with pytest.raises(LockHeld):
        lease.fence(30)
    assert lease.lost
    redis_client.set(lock.key, lease.token)  # even if the token came back (a stale replica)
    with pytest.raises(LockHeld):
        lease.fence(30)
    lease.release()  # frees what is ours by token, nothing else
    assert not lock.held()


def test_the_heartbeats_loss_stops_the_next_fence_without_asking_redis(lock: RedisLock) -> None:
    lease = lock.acquire(60)
    assert lease is not None
    lease.mark_lost()
    with pytest.raises(LockHeld):
        lease.fence(30)
    assert lock.held()  # Redis still has our token: the lease did not need to ask


def test_beat_holds_or_takes(lock: RedisLock, redis_client: redis.Redis[bytes]) -> None:
    mine, theirs = new_token(), new_token()
    assert lock.hold_or_take(mine, 5)  # free: taken
    assert not lock.hold_or_take(theirs, 5)  # ours: the other replica stands by
    redis_client.pexpire(lock.key, 100)
    assert lock.hold_or_take(mine, 5)  # renewed each tick
    assert redis_client.pttl(lock.key) > 4_000
    assert lock.release(mine)
    assert lock.hold_or_take(theirs, 5)


def test_an_unreachable_redis_is_a_state_error_not_a_held_lock() -> None:
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    lock = RedisLock(dead, "vpcnet:{x}:lock")
    with pytest.raises(StateError):
        lock.acquire(5)
    with pytest.raises(StateError):
        lock.extend(new_token(), 5)


@pytest.fixture
def primary_and_replica(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    primary, replica = RedisServer(tmp_path / "primary"), RedisServer(tmp_path / "replica")
    primary.start()
    replica.start()
    try:
        replica.client().replicaof("127.0.0.1", primary.port)
        wait_for(lambda: replica.client().info("replication").get("master_link_status") == "up",
                 10, "replica in sync")
        yield primary, replica
    finally:
        if replica.proc is not None:
            os.kill(replica.proc.pid, signal.SIGCONT)
        replica.stop()
        primary.stop()


def test_with_replicas_a_fence_holds_only_once_a_replica_has_it(
    primary_and_replica: tuple[RedisServer, RedisServer],
) -> None:
    primary, replica = primary_and_replica
    lock = RedisLock(primary.client(), "vpcnet:{c/n1}:lock", replicas=1, replica_wait_seconds=0.3)
    lease = lock.acquire(20)
    assert lease is not None
    lease.fence(20)
    # the promoted replica of a failover would hold our token: no second pass takes it
    assert replica.client().get(lock.key) == lease.token.encode()
    assert replica.proc is not None
    os.kill(replica.proc.pid, signal.SIGSTOP)  # the link is cut: extensions stop arriving
    with pytest.raises(StateError):
        lease.fence(20)
    assert not lease.lost  # still ours on the primary: a retry may act once replicated
    os.kill(replica.proc.pid, signal.SIGCONT)
    lease.fence(20)
