"""The shared EC2 rate limiter: GCRA schedule in real Redis, and several processes
together staying under EC2's (the emulator's) token bucket."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from typing import Any

import botocore.exceptions
import pytest
import redis

from vpcnet.aws.buckets import Bucket
from vpcnet.aws.calls import CallRecorder
from vpcnet.aws.ec2 import Ec2, make_client
from vpcnet.aws.ratelimit import Rate, RateLimiter
from vpcnet.errors import Ec2TemporaryError
from vpcnet.state.keys import ClusterKeys
from vpcnet_sim.ec2 import Ec2Emulator, World

ATTACH = "AttachNetworkInterface"
SMALL = Bucket(10, 40.0)


def test_rate_is_a_share_of_the_bucket() -> None:
    assert Rate.share_of(Bucket(50, 5.0), 0.8) == Rate(40, 4.0)
    assert Rate.share_of(Bucket(100, 20.0), 1.0).interval_us == 50_000


def test_time_scale_refills_faster() -> None:
    limiter = RateLimiter(redis.Redis(), "c", share=0.5, time_scale=10.0)
    assert limiter.rate(ATTACH) == Rate(25, 25.0)  # AWS: bucket 50, refill 5/s


def test_burst_then_one_token_per_interval(redis_url: str, cluster_name: str) -> None:
    limiter = RateLimiter(redis.Redis.from_url(redis_url), cluster_name, share=1.0,
                          bucket_of=lambda a: Bucket(10, 50.0))
    burst = [limiter.acquire(ATTACH) for _ in range(10)]
    start = time.monotonic()
    for _ in range(10):
        limiter.acquire(ATTACH)
    # The burst was granted at once; then the limiter cannot go faster than its refill
    # (ten tokens at 20 ms each; a lower bound, which load cannot break).
    assert max(burst) < 0.5
    assert time.monotonic() - start >= 10 * 0.02 - 0.02


def test_a_turn_too_far_away_refuses_and_leaves_the_queue(redis_url: str, cluster_name: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RateLimiter(client, cluster_name, share=1.0, max_wait_seconds=1.0,
                          bucket_of=lambda a: Bucket(5, 0.5))
    limiter.drain(ATTACH)  # EC2 throttled us: the next token is one interval (2 s) away
    with pytest.raises(Ec2TemporaryError) as refused:
        limiter.acquire(ATTACH)
    assert refused.value.code == "VpcnetRateLimited"
    assert refused.value.delay is not None and refused.value.delay > 1.0
    base = ClusterKeys(cluster_name).ratelimit(ATTACH)
    # Nothing left queued that would hold the next caller's place.
    assert [client.zcard(f"{base}:{q}") for q in ("q0", "q1", "alive")] == [0, 0, 0]


def _hammer(endpoint: str, redis_url: str, cluster: str, subnet: str, threads: int, calls: int) -> None:
    client = redis.Redis.from_url(redis_url)
    ec2 = Ec2(make_client("us-east-1", endpoint),
              RateLimiter(client, cluster, share=0.9, bucket_of=lambda a: SMALL),
              CallRecorder(client, cluster))

    def work() -> None:
        for _ in range(calls):
            ec2.describe_subnets([subnet])

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def test_processes_share_one_bucket_and_ec2_never_throttles(
    ec2_emulator: Ec2Emulator, ec2_world: World, redis_url: str,
) -> None:
    ec2_emulator.set_config(bucket_overrides={"DescribeSubnets": SMALL})
    subnet = ec2_world.subnet_ids[0]
    # Without the limiter, the same burst is throttled by EC2: the test can fail. Only
    # RequestLimitExceeded counts (a refused connection or a bad request is no throttle).
    bare = make_client("us-east-1", ec2_emulator.endpoint_url)
    codes: list[str] = []
    for _ in range(30):
        try:
            bare.describe_subnets(SubnetIds=[subnet])
        except botocore.exceptions.ClientError as e:
            codes.append(str(e.response["Error"]["Code"]))
    assert codes and set(codes) == {"RequestLimitExceeded"}
    assert ec2_emulator.counters()["throttled"] == {"DescribeSubnets": len(codes)}
    # A new bucket table gives the emulator full buckets again.
    ec2_emulator.set_config(bucket_overrides={"DescribeSubnets": Bucket(10, 40.0001)})
    ec2_emulator.set_config(bucket_overrides={"DescribeSubnets": SMALL})
    ec2_emulator.reset_counters()

    cluster = f"rl{uuid.uuid4().hex[:8]}"
    spawn = multiprocessing.get_context("spawn")
    procs: list[Any] = [
        spawn.Process(target=_hammer, args=(ec2_emulator.endpoint_url, redis_url, cluster, subnet, 4, 10))
        for _ in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    counters = ec2_emulator.counters()
    assert counters["calls"] == {"DescribeSubnets": 120}
    assert counters["throttled"] == {}
    totals = CallRecorder(redis.Redis.from_url(redis_url), cluster).totals()
    assert totals["calls"] == {"DescribeSubnets": 120}
    assert totals["wait_us"]["DescribeSubnets"] > 0  # callers did wait, and it was measured
