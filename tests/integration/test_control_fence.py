"""Invariant 9: no EC2 mutation for a node after its lock is lost.

Real Redis, the EC2 emulator over HTTP with injected latency, the Kubernetes emulator.
The emulator counts each call when it arrives (before its latency), so the counters say
which calls were sent, and when a call is in flight.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import uuid
from typing import Any

import boto3
import pytest
from botocore.config import Config
from kubernetes import client as k8s

from tests.fixtures.celery import wait_until
from tests.integration.control_support import (
    all_cluster_enis,
    assert_redis_equals_ec2,
    context_for,
    join,
    vpcnet_enis,
)
from vpcnet.aws.calls import CallRecorder
from vpcnet.aws.ec2 import Ec2, make_client
from vpcnet.aws.fence import fenced_by
from vpcnet.control.context import ControlContext
from vpcnet.control.provision import provision_node
from vpcnet.control.release import release_node
from vpcnet.domain import Mode
from vpcnet.errors import Ec2PermanentError, Ec2TemporaryError, LockHeld
from vpcnet.settings import Settings
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.ec2.config import Latency
from vpcnet_sim.kube import KubeEmulator

ASSIGN = "AssignPrivateIpAddresses"
CREATE = "CreateNetworkInterface"


def mutations(ec2: Ec2Emulator) -> int:
    calls = ec2.counters()["calls"].items()
    return sum(n for action, n in calls if not action.startswith(("Describe", "Get", "List")))


def ec2_shape(ec2: Ec2Emulator, iid: str) -> list[tuple[Any, ...]]:
    """What one clean run determines: per ENI its slot, address counts, attachment."""
    return sorted(
        (e["device_index"], len(e["secondary_ips"]), len(e["prefixes"]), e["status"],
         bool(e["delete_on_termination"]) or e["device_index"] == 0)
        for e in vpcnet_enis(ec2, iid)
    )


def start_pass(ctx: ControlContext, iid: str, az: str) -> tuple[threading.Thread, list[BaseException]]:
    """Node n1's provisioning pass on a thread of its own, and where its error lands."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            provision_node(ctx, "n1", iid, az)
        except BaseException as e:  # the test inspects it
            failure.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, failure


def test_a_pass_whose_lock_is_stolen_makes_no_further_ec2_mutation(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator,
) -> None:
    ec2_emulator.set_config(mutating_latency=Latency(0.3))
    ctx = context_for(control_settings)
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "n1", "m5.xlarge")
    ec2_emulator.reset_counters()
    pass_a, failure = start_pass(ctx, iid, az)
    # A full join of an m5.xlarge is ~10 mutations; steal while the first is in flight,
    # as another worker would take a lock that expired or was lost in a failover.
    wait_until(lambda: mutations(ec2_emulator) >= 1, 30, "the pass's first EC2 mutation")
    ctx.state.redis.set(ctx.state.node_keys("n1").lock, uuid.uuid4().hex, px=60_000)
    sent_before_steal = mutations(ec2_emulator)
    pass_a.join(60)
    assert not pass_a.is_alive()
    assert [type(e) for e in failure] == [LockHeld]
    assert mutations(ec2_emulator) == sent_before_steal  # not one call after the loss
    assert ctx.state.read_node("n1") is None or not ctx.state.read_node("n1").enis  # type: ignore[union-attr]


def test_a_pass_whose_lock_is_stolen_while_its_chains_run_in_parallel_stops_them_all(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator,
) -> None:
    """Three chains in flight on three threads when the lock goes: none of them sends its
    next call. The ENIs they created are not lost: the retry replays their ClientTokens."""
    ec2_emulator.set_config(latency={CREATE: Latency(0.5)})
    ctx = context_for(control_settings.with_(eni_gc_grace_seconds=0.0))
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "n1", "m5.xlarge")
    ec2_emulator.reset_counters()
    pass_a, failure = start_pass(ctx, iid, az)
    # The emulator counts a call on arrival: all three chains' first calls are out.
    wait_until(lambda: ec2_emulator.counters()["calls"].get(CREATE, 0) == 3, 30,
               "three CreateNetworkInterface calls in flight together", every=0.01)
    thief = uuid.uuid4().hex
    ctx.state.redis.set(ctx.state.node_keys("n1").lock, thief, px=60_000)
    sent_before_steal = mutations(ec2_emulator)
    pass_a.join(60)
    assert not pass_a.is_alive()
    assert [type(e) for e in failure] == [LockHeld]
    assert mutations(ec2_emulator) == sent_before_steal  # not one call from any thread
    calls = ec2_emulator.counters()["calls"]
    assert "AttachNetworkInterface" not in calls and "ModifyNetworkInterfaceAttribute" not in calls
    st = ctx.state.read_node("n1")
    assert st is None or not st.enis  # the lock is gone: nothing written back

    ctx.state.release_lock("n1", thief)
    assert provision_node(ctx, "n1", iid, az).written  # the retry
    enis = vpcnet_enis(ec2_emulator, iid)
    assert len(enis) == 4
    # The three created ENIs came back by their tokens and were attached: none left over.
    assert {e["eni_id"] for e in all_cluster_enis(ec2_emulator, ctx.cluster)} <= {
        e["eni_id"] for e in enis}
    done = ctx.state.read_node("n1")
    assert done is not None
    assert_redis_equals_ec2(done, enis)


def test_a_release_whose_lock_is_stolen_detaches_nothing_more(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator, kube_api: Any,
) -> None:
    ctx = context_for(control_settings)
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "n1", "m5.xlarge")
    provision_node(ctx, "n1", iid, az)
    k8s.CoreV1Api(kube_api).delete_node("n1")
    ec2_emulator.set_config(mutating_latency=Latency(0.3))
    ec2_emulator.reset_counters()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            release_node(ctx, "n1", iid)
        except BaseException as e:  # the test inspects it
            failure.append(e)

    releasing = threading.Thread(target=run)
    releasing.start()
    # three ENIs to detach: steal the lock while the first detach is in flight
    wait_until(lambda: mutations(ec2_emulator) >= 1, 30, "the release's first detach")
    ctx.state.redis.set(ctx.state.node_keys("n1").lock, uuid.uuid4().hex, px=60_000)
    sent_before_steal = mutations(ec2_emulator)
    releasing.join(60)
    assert [type(e) for e in failure] == [LockHeld]
    assert mutations(ec2_emulator) == sent_before_steal
    assert ctx.state.read_node("n1") is not None  # the state is not dropped either


def _contested_pass(settings: Settings, node: str, iid: str, az: str, ttl: float) -> None:
    """Pass A, in its own process so the test can freeze it (a GC or VM pause)."""
    ctx = ControlContext.from_settings(settings)
    ctx.lock_ttl_seconds = ttl
    try:
        provision_node(ctx, node, iid, az)
    except LockHeld:
        os._exit(3)  # lost its lock: the task would retry
    os._exit(0)


@pytest.mark.parametrize("mode", [Mode.WARM, Mode.PREFIX])
def test_two_concurrent_passes_leave_the_ec2_state_of_one_clean_run(
    mode: Mode, control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator,
) -> None:
    ttl, latency = 0.5, 4.0  # the node lock's TTL is far below one EC2 call's latency
    settings = control_settings.with_(mode=mode, warm_ip_target=4, minimum_ip_target=0,
                                      warm_prefix_target=1)
    ec2_emulator.set_config(latency={ASSIGN: Latency(latency)})
    az, subnet = ec2_world.azs[0], ec2_world.subnet_ids[0]

    # The reference: one clean run on an identical node.
    ref = join(ec2_emulator, kube_emulator, subnet, az, "ref", "m5.large")
    clean = context_for(settings)
    provision_node(clean, "ref", ref, az)

    iid = join(ec2_emulator, kube_emulator, subnet, az, "n1", "m5.large")
    before = ec2_emulator.counters()["calls"].get(ASSIGN, 0)
    a = multiprocessing.get_context("spawn").Process(
        target=_contested_pass, args=(settings, "n1", iid, az, ttl))
    a.start()
    try:
        wait_until(lambda: ec2_emulator.counters()["calls"].get(ASSIGN, 0) > before, 60,
                   "pass A's assign in flight", every=0.01)
        assert a.pid is not None
        os.kill(a.pid, signal.SIGSTOP)  # frozen with its call out; its heartbeat stops too
        time.sleep(ttl * 2)  # a bare lease would have expired by now
        b = context_for(settings)
        b.lock_ttl_seconds = ttl
        try:
            out = provision_node(b, "n1", iid, az)  # pass B, the task run again elsewhere
            b_first = "handed" if out.handed_over and not out.actions else "acted"
        except LockHeld:
            b_first = "refused"  # retries later, as the task would
    finally:
        if a.pid is not None:
            os.kill(a.pid, signal.SIGCONT)
        a.join(60)
    # The fence made A's lock outlast A's call in flight, freeze or not: B could not act
    # (it handed its work to A, the holder), and A, thawed, finished its pass and wrote it back.
    assert (b_first, a.exitcode) == ("handed", 0)
    # B's retry, once A is done: converges, adds nothing.
    assert not provision_node(b, "n1", iid, az).written
    assert ec2_shape(ec2_emulator, iid) == ec2_shape(ec2_emulator, ref)
    st = b.state.read_node("n1")
    assert st is not None
    assert_redis_equals_ec2(st, vpcnet_enis(ec2_emulator, iid))


def test_a_mutation_outside_any_lock_is_refused_before_it_is_sent(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    ctx = context_for(control_settings)
    ec2 = Ec2(make_client("us-east-1", ec2_emulator.endpoint_url), None,
              CallRecorder(ctx.state.redis, ctx.cluster))
    ec2_emulator.reset_counters()
    with pytest.raises(Ec2PermanentError) as err:
        ec2.assign_ips("eni-00000000", 1)
    assert err.value.code == "VpcnetUnfenced"
    assert ec2_emulator.counters()["calls"] == {}
    ec2.describe_subnets(ec2_world.subnet_ids[:1])  # reads need no fence
    assert ec2_emulator.counters()["calls"] == {"DescribeSubnets": 1}


def test_a_call_that_times_out_keeps_the_lock_until_ec2_may_have_acted(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    ctx = context_for(control_settings)
    eni = ec2_emulator.client().create_network_interface(
        SubnetId=ec2_world.subnet_ids[0])["NetworkInterface"]["NetworkInterfaceId"]
    ec2_emulator.set_config(latency={ASSIGN: Latency(2.0)})  # EC2 acts 2 s after receipt
    impatient = boto3.session.Session().client(
        "ec2", region_name="us-east-1", endpoint_url=ec2_emulator.endpoint_url,
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=0.3))
    ec2 = Ec2(impatient, None, None)
    lease = ctx.state.lease_lock("n1", 5.0)
    with fenced_by(lease), pytest.raises(Ec2TemporaryError):
        ec2.assign_ips(eni, 1)  # our read times out; the request is at EC2
    lease.release()  # what node_lock does on the way out
    # Not freed: EC2 may still carry the call out, no other pass may act before it has.
    assert ctx.state.lock_held("n1")
    assert ctx.state.redis.pttl(ctx.state.node_keys("n1").lock) > 15_000
    wait_until(lambda: len(ec2_emulator.client().describe_network_interfaces(
        NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]["PrivateIpAddresses"]) == 2,
        10, "EC2 carrying out the timed-out call")
    assert ctx.state.lock_held("n1")
