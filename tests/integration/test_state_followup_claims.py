"""Beat's follow-up claims (``vpcnet.state.claims.FollowupClaims``) against a real
redis-server: of claimers racing for the same follow-up exactly one wins (two beats
during a lease hand-over must not both send the task), and the task's clear lets the
next scan send it again."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from vpcnet.state.claims import FollowupClaims
from vpcnet.state.keys import ClusterKeys, followup_field
from vpcnet.tasknames import NODE_READY, PROVISION_NODE
from vpcnet_sim.embedded.procs import RedisServer

CLAIMERS = 8  # each with its own connection, as separate beat processes have
ROUNDS = 300  # a fresh follow-up per round; the read-then-write claim lost most of them
FRESH = 600.0


@pytest.fixture
def clients(redis_server: RedisServer) -> Iterator[list[redis.Redis[bytes]]]:
    made = [redis.Redis.from_url(redis_server.url) for _ in range(CLAIMERS)]
    yield made
    for c in made:
        c.close()


def test_of_claimers_racing_for_one_followup_exactly_one_wins(
    clients: list[redis.Redis[bytes]], cluster_name: str,
) -> None:
    keys = ClusterKeys(cluster_name)
    claimers = [FollowupClaims(c, keys) for c in clients]
    for i, c in enumerate(claimers):  # connect and load the script before the race
        c.claim(f"warm-up-{i}", PROVISION_NODE, FRESH)
    start = threading.Barrier(CLAIMERS)
    winners: Counter[int] = Counter()
    count = threading.Lock()

    def race(claimer: FollowupClaims) -> None:
        for r in range(ROUNDS):
            start.wait(timeout=60)
            if claimer.claim(f"n{r}", PROVISION_NODE, FRESH):
                with count:
                    winners[r] += 1

    with ThreadPoolExecutor(CLAIMERS) as pool:
        for done in [pool.submit(race, c) for c in claimers]:
            done.result()
    not_one = {r: winners[r] for r in range(ROUNDS) if winners[r] != 1}
    assert not_one == {}, f"{len(not_one)} of {ROUNDS} follow-ups won by other than one claimer"


def test_a_fresh_claim_holds_until_the_task_clears_it(
    redis_client: redis.Redis[bytes], cluster_name: str,
) -> None:
    keys = ClusterKeys(cluster_name)
    claims = FollowupClaims(redis_client, keys)
    assert claims.claim("n1", PROVISION_NODE, FRESH)
    assert not claims.claim("n1", PROVISION_NODE, FRESH)  # a scan while it waits in the queue
    assert claims.claim("n1", NODE_READY, FRESH)  # another task of the node is its own claim
    assert claims.claim("n2", PROVISION_NODE, FRESH)  # and so is another node
    claims.clear("n1", PROVISION_NODE)  # the task started
    assert claims.claim("n1", PROVISION_NODE, FRESH)
    stored = redis_client.hget(keys.node("n1").node, followup_field(PROVISION_NODE))
    assert stored is not None
    float(stored)  # when it was claimed, a unix time (the sentinel test writes one too)


def test_a_stale_or_unreadable_claim_is_taken_over(
    redis_client: redis.Redis[bytes], cluster_name: str,
) -> None:
    keys = ClusterKeys(cluster_name)
    claims = FollowupClaims(redis_client, keys)
    node_hash, field = keys.node("n1").node, followup_field(PROVISION_NODE)
    # A claim whose clear was lost (a failover) stops holding after the fresh window.
    redis_client.hset(node_hash, field, f"{time.time() - 2 * FRESH:.3f}")
    assert claims.claim("n1", PROVISION_NODE, FRESH)
    assert not claims.claim("n1", PROVISION_NODE, FRESH)
    redis_client.hset(node_hash, field, "not a time")
    assert claims.claim("n1", PROVISION_NODE, FRESH)
