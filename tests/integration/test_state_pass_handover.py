"""The hand-over between provisioning passes of one node (``vpcnet.state.claims.PassHandover``),
against the real redis-server: a pass hands over only to a provisioning pass that holds
the lock, and a hand-over made after the holder's last look is reported by its release,
never lost (the release and the flag are one script each)."""

from __future__ import annotations

import redis

from vpcnet.state.claims import HANDED_OVER, HELD_BY_OTHER_WORK, LOCK_FREE, PassHandover
from vpcnet.state.keys import ClusterKeys
from vpcnet.state.lock import RedisLock


def _setup(redis_client: redis.Redis[bytes], cluster_name: str) -> tuple[PassHandover, RedisLock]:
    keys = ClusterKeys(cluster_name)
    return PassHandover(redis_client, keys, 60), RedisLock(redis_client, keys.node("n1").lock)


def test_a_free_lock_is_taken_not_handed_over(redis_client: redis.Redis[bytes],
                                             cluster_name: str) -> None:
    handover, lock = _setup(redis_client, cluster_name)
    assert handover.hand_over("n1") == LOCK_FREE
    assert not lock.held()


def test_a_lock_held_by_other_work_is_not_handed_over(redis_client: redis.Redis[bytes],
                                                     cluster_name: str) -> None:
    handover, lock = _setup(redis_client, cluster_name)
    lease = lock.acquire(30)  # node_ready, a release: no rounds, no hand-overs
    assert lease is not None
    assert handover.hand_over("n1") == HELD_BY_OTHER_WORK
    assert not handover.take_wanted("n1", lease.token)


def test_a_hand_over_is_taken_by_the_holders_next_look(redis_client: redis.Redis[bytes],
                                                      cluster_name: str) -> None:
    handover, lock = _setup(redis_client, cluster_name)
    lease = lock.acquire(30)
    assert lease is not None
    handover.begin("n1", lease.token)
    assert handover.hand_over("n1") == HANDED_OVER
    assert handover.hand_over("n1") == HANDED_OVER  # two passes, one more round
    assert handover.take_wanted("n1", lease.token)
    assert not handover.take_wanted("n1", lease.token)
    assert not handover.take_wanted("n1", "another-token")
    assert not handover.release("n1", lease.token)  # nothing came after the look
    assert not lock.held()
    assert handover.hand_over("n1") == LOCK_FREE


def test_a_hand_over_after_the_last_look_is_reported_by_the_release(
        redis_client: redis.Redis[bytes], cluster_name: str) -> None:
    handover, lock = _setup(redis_client, cluster_name)
    lease = lock.acquire(30)
    assert lease is not None
    handover.begin("n1", lease.token)
    assert not handover.take_wanted("n1", lease.token)  # the holder's last look
    assert handover.hand_over("n1") == HANDED_OVER  # then a pass arrives
    assert handover.release("n1", lease.token)  # the holder must send one
    assert not lock.held()


def test_only_the_holder_releases(redis_client: redis.Redis[bytes], cluster_name: str) -> None:
    handover, lock = _setup(redis_client, cluster_name)
    lease = lock.acquire(30)
    assert lease is not None
    handover.begin("n1", lease.token)
    assert handover.hand_over("n1") == HANDED_OVER
    assert not handover.release("n1", "not-the-holder")
    assert lock.held() and handover.take_wanted("n1", lease.token)


def test_a_new_holder_does_not_inherit_a_dead_holders_hand_over(
        redis_client: redis.Redis[bytes], cluster_name: str) -> None:
    handover, lock = _setup(redis_client, cluster_name)
    dead = lock.acquire(30)
    assert dead is not None
    handover.begin("n1", dead.token)
    assert handover.hand_over("n1") == HANDED_OVER
    redis_client.delete(lock.key)  # the holder was killed: its lock lapsed
    fresh = lock.acquire(30)
    assert fresh is not None
    assert handover.hand_over("n1") == HELD_BY_OTHER_WORK  # not begun yet: no hand-over
    handover.begin("n1", fresh.token)
    # The dead holder's pass is redelivered (acks_late) and re-plans from a fresh read.
    assert not handover.take_wanted("n1", fresh.token)
