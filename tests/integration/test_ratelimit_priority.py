"""The shared rate limiter's order across worker processes (real Redis, spawned
processes, threads in each): foreground before background, the oldest joining node
first, and the bucket's rate whatever the order.

Every process logs each token it was granted into one Redis list right after the grant;
the tests read the order of that log (counts, not times). A grant is logged a few
microseconds after it happened while the next one is an interval (50 ms) away, so the
log's order is the limiter's.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from typing import Any

import pytest
import redis

from vpcnet.aws.buckets import Bucket
from vpcnet.aws.calls import CallRecorder
from vpcnet.aws.ec2 import Ec2, make_client
from vpcnet.aws.priority import background, foreground
from vpcnet.aws.ratelimit import RateLimiter
from vpcnet.errors import Ec2TemporaryError
from vpcnet_sim.ec2 import Ec2Emulator, World

ACTION = "AssignPrivateIpAddresses"
# No burst, one token every 50 ms: every grant is a turn the limiter chose.
SLOW = Bucket(1, 20.0)


def _limiter(redis_url: str, cluster: str, bucket: Bucket = SLOW) -> RateLimiter:
    return RateLimiter(redis.Redis.from_url(redis_url), cluster, share=1.0, bucket_of=lambda a: bucket)


def _background(redis_url: str, cluster: str, threads: int) -> None:
    """Background calls, back to back, until the ``stop`` key appears."""
    client = redis.Redis.from_url(redis_url)
    limiter = _limiter(redis_url, cluster)

    def work() -> None:
        with background():
            while not client.exists(f"{cluster}:stop"):
                limiter.acquire(ACTION)
                client.rpush(f"{cluster}:log", "bg")

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def _joins(redis_url: str, cluster: str, threads: int, calls: int) -> None:
    """Worker threads take nodes from a queue in join order (as Celery hands out
    provision tasks) and make each node's calls one after another."""
    client = redis.Redis.from_url(redis_url)
    limiter = _limiter(redis_url, cluster)

    def work() -> None:
        while (raw := client.lpop(f"{cluster}:nodes")) is not None:
            node = raw.decode()
            with foreground(node):
                for _ in range(calls):
                    limiter.acquire(ACTION)
                    client.rpush(f"{cluster}:log", node)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def _spawn(target: Any, *args: Any) -> Any:
    p = multiprocessing.get_context("spawn").Process(target=target, args=args)
    p.start()
    return p


def _log(client: redis.Redis[bytes], cluster: str) -> list[str]:
    return [x.decode() for x in client.lrange(f"{cluster}:log", 0, -1)]


def _wait_for(cond: Any, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_background_waits_while_foreground_calls_are_pending(redis_url: str) -> None:
    cluster = f"rl{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    bg = [_spawn(_background, redis_url, cluster, 3) for _ in range(2)]
    try:
        # Background work has the bucket to itself first...
        _wait_for(lambda: client.llen(f"{cluster}:log") >= 10, 60)
        # ...then six nodes join, served by two worker processes of three threads.
        client.rpush(f"{cluster}:nodes", *[f"node-{i}" for i in range(6)])
        fg = [_spawn(_joins, redis_url, cluster, 3, 5) for _ in range(2)]
        for p in fg:
            p.join(120)
            assert p.exitcode == 0
    finally:
        client.set(f"{cluster}:stop", 1)
        for p in bg:
            p.join(60)
    log = _log(client, cluster)
    fg_at = [i for i, who in enumerate(log) if who != "bg"]
    assert len(fg_at) == 30
    during = log[fg_at[0] : fg_at[-1]]
    # Six background threads wanted every token; while the joins' calls were queued
    # they got none (two allowed for a foreground thread between its calls at the
    # instant a token fell due). FIFO would have given them about half.
    assert during.count("bg") <= 2, during
    assert log.count("bg") > during.count("bg")  # background did run, before and after


def test_nodes_finish_in_join_order_not_in_waves(redis_url: str) -> None:
    cluster = f"rl{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    nodes, calls, threads = 24, 4, 8
    client.rpush(f"{cluster}:nodes", *[f"node-{i:02d}" for i in range(nodes)])
    procs = [_spawn(_joins, redis_url, cluster, threads // 2, calls) for _ in range(2)]
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    log = _log(client, cluster)
    assert len(log) == nodes * calls
    finished_at = {node: i for i, node in enumerate(log)}  # index of each node's last call
    # Join order as the limiter saw it: each node's ticket (its first foreground call).
    keys = RateLimiter(client, cluster, share=1.0)._keys
    tickets = {n: int(client.get(keys.ratelimit(f"ticket:{n}")) or 0) for n in finished_at}
    by_join = sorted(finished_at, key=lambda n: tickets[n])
    # The r-th node to join is done within its own r+1 nodes' calls, give or take one
    # call per thread: the oldest node's calls go first. With a FIFO limiter the eight
    # threads' nodes advance together and the first finishes only after ~8 x 4 calls.
    late = {
        n: (finished_at[n], (r + 1) * calls + threads)
        for r, n in enumerate(by_join)
        if finished_at[n] > (r + 1) * calls + threads
    }
    assert not late, late
    assert finished_at[by_join[0]] < 2 * calls  # the first joiner finishes first


def _mixed(endpoint: str, redis_url: str, cluster: str, subnet: str, fg: bool, nodes: int,
           calls: int, scale: float) -> None:
    client = redis.Redis.from_url(redis_url)
    ec2 = Ec2(make_client("us-east-1", endpoint),
              RateLimiter(client, cluster, share=0.9, bucket_of=lambda a: Bucket(10, 4.0),
                          time_scale=scale),
              CallRecorder(client, cluster))

    def work(i: int) -> None:
        with foreground(f"n{i}") if fg else background():
            for _ in range(calls):
                ec2.describe_subnets([subnet])

    pool = [threading.Thread(target=work, args=(i,)) for i in range(nodes)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_total_rate_never_exceeds_the_bucket_whatever_the_order(
    ec2_emulator: Ec2Emulator, ec2_world: World, redis_url: str, scale: float,
) -> None:
    # EC2 (the emulator) is the judge: the same bucket, on the same scaled clock.
    ec2_emulator.set_config(bucket_overrides={"DescribeSubnets": Bucket(10, 4.0)}, time_scale=scale)
    ec2_emulator.reset_counters()
    cluster = f"rl{uuid.uuid4().hex[:8]}"
    calls = 4 if scale == 1.0 else 40
    procs = [
        _spawn(_mixed, ec2_emulator.endpoint_url, redis_url, cluster, ec2_world.subnet_ids[0],
               fg, 3, calls, scale)
        for fg in (True, True, False)
    ]
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    counters = ec2_emulator.counters()
    assert counters["calls"] == {"DescribeSubnets": 9 * calls}
    assert counters["throttled"] == {}


def _queue_and_wait(redis_url: str, cluster: str) -> None:
    with foreground("doomed"):
        _limiter(redis_url, cluster, Bucket(1, 0.05)).acquire(ACTION)  # a 20 s turn


def test_a_waiter_whose_process_died_loses_its_place(redis_url: str) -> None:
    cluster = f"rl{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    limiter = _limiter(redis_url, cluster, Bucket(1, 0.05))
    limiter.drain(ACTION)  # the next token is 20 s away
    p = _spawn(_queue_and_wait, redis_url, cluster)
    q0 = f"{limiter._keys.ratelimit(ACTION)}:q0"
    _wait_for(lambda: client.zcard(q0) == 1, 60)
    p.kill()  # SIGKILL: no chance to leave the queue
    p.join(10)
    time.sleep(3.5)  # longer than a waiter may go without asking
    refusing = RateLimiter(client, cluster, share=1.0, max_wait_seconds=1.0,
                           bucket_of=lambda a: Bucket(1, 0.05))
    with background(), pytest.raises(Ec2TemporaryError):
        refusing.acquire(ACTION)  # its turn is ~16 s away: refused
    # Its place is gone (the refused waiter left too): it holds no one's turn.
    assert client.zcard(q0) == 0
