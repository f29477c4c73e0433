"""The pure halves of a provisioning pass: its inputs, the intent and the write-back."""

from __future__ import annotations

import dataclasses
import ipaddress
import json

import pytest

from vpcnet.control.inputs import ProvisionInputs, pass_epoch
from vpcnet.control.view import EniView, InstanceView
from vpcnet.control.writeback import intent_fields, plan_write_back, wants_early_write
from vpcnet.domain import IPv4, Mode, NodePhase
from vpcnet.errors import StateError
from vpcnet.limits import bundled_limits
from vpcnet.plan import EniConfig, PoolUsage, Targets, plan_node
from vpcnet.state.records import NodeRecord, StoreVersion
from vpcnet.wellknown import TAG_CLUSTER

CLUSTER = "c1"
SUBNET = "subnet-0123456789abcdef0"
CIDR = ipaddress.IPv4Network("10.0.0.0/16")


def ip(s: str) -> IPv4:
    return ipaddress.IPv4Address(s)


def eni(idx: int, n_ips: int) -> EniView:
    return EniView(
        eni_id=f"eni-{idx}", mac=f"02:00:00:00:00:0{idx}", subnet_id=SUBNET,
        primary_ip=ip(f"10.0.{idx}.4"),
        ips=tuple(ip(f"10.0.{idx}.10") + i for i in range(n_ips)), device_index=idx,
        attachment_id=f"eni-attach-{idx}", delete_on_termination=True,
        tags={TAG_CLUSTER: CLUSTER} if idx else {},
    )


def inputs(*enis: EniView, previous: NodeRecord | None = None) -> ProvisionInputs:
    limits = bundled_limits("m5.large")
    assert limits is not None
    inst = InstanceView("i-0abc", "m5.large", "az-1", "running", SUBNET, "vpc-1", ip("10.0.0.4"),
                        ("sg-0123456789abcdef0",), tuple(enis))
    return ProvisionInputs(
        cluster=CLUSTER, node="n1", previous=previous, previous_enis=(), instance=inst,
        limits=limits, usage=PoolUsage(), mode=Mode.WARM,
        eni_config=EniConfig(SUBNET, ("sg-0123456789abcdef0",)), subnet_cidrs={SUBNET: CIDR},
        targets=Targets(warm_ip_target=2), epoch="1700000000.000",
    )


def test_a_first_pass_writes_the_node_as_provisioned_and_ends_its_epoch() -> None:
    given = inputs(eni(0, 0))
    plan = plan_node(given.spec(), given.instance.enis, given.usage)
    grown = (dataclasses.replace(eni(0, 2)),)
    wb = plan_write_back(given, plan, grown, ())
    assert wb.state_changed and wb.replaces_state
    assert wb.record.phase is NodePhase.PROVISIONED and wb.record.pass_epoch == ""
    assert json.loads(wb.record.plan_calls) == {"DescribeInstances": 1, "AssignPrivateIpAddresses": 1}
    assert [r.eni_id for r in wb.enis] == ["eni-0"] and wb.enis[0].subnet_cidr == CIDR
    assert wb.release_requests == () and wb.released == ()


def test_an_unchanged_node_is_not_rewritten_and_keeps_its_plan_calls() -> None:
    first = inputs(eni(0, 2))
    plan = plan_node(first.spec(), first.instance.enis, first.usage)
    assert not plan  # 2 free = warm target
    done = plan_write_back(first, plan, first.instance.enis, ())
    again = dataclasses.replace(first, previous=done.record, previous_enis=done.enis)
    wb = plan_write_back(again, plan, again.instance.enis, ())
    assert not wb.state_changed and not wb.replaces_state
    assert "plan_calls" not in wb.record.to_redis()  # a pass that did not act keeps the last


def test_release_requests_alone_do_not_rewrite_the_node_state() -> None:
    pool = eni(0, 6)
    first = inputs(pool)
    done = plan_write_back(first, plan_node(first.spec(), (pool,)), (pool,), ())
    given = dataclasses.replace(first, previous=done.record, previous_enis=done.enis)
    plan = plan_node(given.spec(), given.instance.enis, given.usage)
    wb = plan_write_back(given, plan, given.instance.enis, ())
    assert len(wb.release_requests) == 4  # 6 free, 2 wanted
    assert not wb.replaces_state


def test_released_addresses_always_rewrite_the_node_state() -> None:
    pool = eni(0, 6)
    first = inputs(pool)
    done = plan_write_back(first, plan_node(first.spec(), (pool,)), (pool,), ())
    given = dataclasses.replace(first, previous=done.record, previous_enis=done.enis)
    wb = plan_write_back(given, plan_node(given.spec(), (pool,)), (pool,), (ip("10.0.0.10"),))
    assert wb.replaces_state and wb.released == (ip("10.0.0.10"),)


def test_a_ready_node_stays_ready_and_its_intent_keeps_the_phase() -> None:
    ready = NodeRecord(instance_id="i-0abc", phase=NodePhase.READY)
    given = inputs(eni(0, 0), previous=ready)
    assert intent_fields(given) == {"pass_epoch": given.epoch, "instance_id": "i-0abc"}
    assert intent_fields(inputs(eni(0, 0)))["phase"] == NodePhase.PROVISIONING.value
    wb = plan_write_back(given, plan_node(given.spec(), given.instance.enis), (eni(0, 2),), ())
    assert wb.record.phase is NodePhase.READY


def test_an_unfinished_write_back_keeps_the_epoch_and_phase_and_requests_nothing() -> None:
    joining = inputs(eni(0, 6))
    plan = plan_node(joining.spec(), joining.instance.enis, joining.usage)
    wb = plan_write_back(joining, plan, joining.instance.enis, (), finished=False)
    assert wb.record.pass_epoch == joining.epoch  # the retry replays its ClientTokens
    assert wb.record.phase is NodePhase.PROVISIONING  # a joining node is not done
    assert wb.release_requests == ()  # the finished pass's
    retired = plan_write_back(joining, plan, joining.instance.enis, (), finished=False,
                              retire_epoch=True)
    assert retired.record.pass_epoch == ""
    ready = dataclasses.replace(joining, previous=NodeRecord(instance_id="i-0abc",
                                                             phase=NodePhase.READY))
    assert plan_write_back(ready, plan, ready.instance.enis, (),
                           finished=False).record.phase is NodePhase.READY


def test_only_a_ready_node_growing_its_pools_and_making_enis_writes_early() -> None:
    ready = NodeRecord(instance_id="i-0abc", phase=NodePhase.READY)
    waiting = dataclasses.replace(inputs(eni(0, 2), previous=ready), usage=PoolUsage(demand=12))
    plan = plan_node(waiting.spec(), waiting.instance.enis, waiting.usage)
    assert {"AssignPrivateIpAddresses", "CreateNetworkInterface"} <= set(plan.ec2_calls())
    assert wants_early_write(waiting, plan)
    assert not wants_early_write(dataclasses.replace(waiting, previous=None), plan)  # joining
    small = dataclasses.replace(waiting, usage=PoolUsage(demand=1))
    small_plan = plan_node(small.spec(), small.instance.enis, small.usage)
    assert "CreateNetworkInterface" not in small_plan.ec2_calls()
    assert not wants_early_write(small, small_plan)  # one write is enough


def test_a_write_back_after_an_earlier_one_says_only_what_is_new() -> None:
    given = inputs(eni(0, 0))
    plan = plan_node(given.spec(), given.instance.enis, given.usage)
    early = plan_write_back(given, plan, (eni(0, 2),), (ip("10.0.0.20"),), finished=False)
    same = plan_write_back(given, plan, (eni(0, 2),), (ip("10.0.0.20"),), finished=False)
    assert not same.after(early).replaces_state  # nothing new: no second generation
    final = plan_write_back(given, plan, (eni(0, 2), eni(1, 3)), (ip("10.0.0.20"),))
    later = final.after(early)
    assert later.replaces_state and later.released == ()


def test_an_unfinished_pass_epoch_is_replayed_and_a_finished_one_is_not() -> None:
    assert pass_epoch(NodeRecord(pass_epoch="12.000"), now=99.0) == "12.000"
    assert pass_epoch(NodeRecord(), now=99.0) == "99.000"
    assert pass_epoch(None, now=99.0) == "99.000"


def test_an_eni_in_a_subnet_not_gathered_is_an_error_not_a_guess() -> None:
    given = inputs(eni(0, 0))
    stray = dataclasses.replace(eni(1, 1), subnet_id="subnet-0fedcba9876543210")
    with pytest.raises(StateError, match="not looked up"):
        plan_write_back(given, plan_node(given.spec(), given.instance.enis), (eni(0, 0), stray), ())


def test_node_record_round_trips_and_reads_garbage_as_empty() -> None:
    rec = NodeRecord(instance_id="i-1", instance_type="m5.large", az="a", subnet_id=SUBNET,
                     primary_ip="10.0.0.4", mode="warm", phase=NodePhase.READY, error="",
                     pass_epoch="", plan_calls='{"DescribeInstances": 1}')
    stored = {k.encode(): v.encode() for k, v in rec.to_redis().items()}
    stored.update({b"epoch": b"e1", b"generation": b"3", b"write_id": b"w", b"no_free_ips": b"1",
                   b"queued:vpcnet.provision_node": b"1.0"})
    back = NodeRecord.from_redis(stored)
    assert back == dataclasses.replace(rec, no_free_ips=True, version=StoreVersion("e1", 3, "w"))
    odd = NodeRecord.from_redis({b"phase": b"bogus", b"generation": b"x"})
    assert odd.phase is None and odd.version.generation == 0 and odd.instance_id == ""
    assert rec.same_desired(dataclasses.replace(rec, plan_calls="", version=StoreVersion("e", 9)))
    assert not rec.same_desired(dataclasses.replace(rec, pass_epoch="5"))
