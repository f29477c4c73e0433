"""Which actions of a plan run side by side, and in which context the helper threads run."""

from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor

from vpcnet.aws.calls import attributed_to, current_node
from vpcnet.aws.fence import current_fence, fenced_by
from vpcnet.aws.priority import CallPriority, Priority, current_priority, foreground
from vpcnet.control.fanout import submit_here
from vpcnet.control.lanes import plan_lanes
from vpcnet.plan import (
    AddEni,
    AssignIps,
    Plan,
    RequestRelease,
    SetDeleteOnTermination,
    UnassignIps,
)


def add(d: int) -> AddEni:
    return AddEni(d, "subnet-1", ("sg-1",), 9, 0, f"token-{d}")


def test_each_existing_eni_is_one_ordered_lane_and_each_new_eni_its_own() -> None:
    ip = ipaddress.IPv4Address("10.0.0.9")
    plan = Plan((
        SetDeleteOnTermination("eni-b", "attach-b"),
        UnassignIps("eni-a", (ip,)),
        add(2),
        AssignIps("eni-a", 3),
        RequestRelease((ip,)),
        add(3),
        AssignIps("eni-b", 1),
    ))
    lanes = plan_lanes(plan)
    assert [lane.actions for lane in lanes] == [
        (SetDeleteOnTermination("eni-b", "attach-b"), AssignIps("eni-b", 1)),
        (UnassignIps("eni-a", (ip,)), AssignIps("eni-a", 3)),  # in plan order
        (add(2),),
        (add(3),),
    ]
    assert [(lane.adds_eni, lane.grows_pool) for lane in lanes] == [
        (False, True), (False, True), (True, False), (True, False)]
    assert plan_lanes(Plan((RequestRelease((ip,)),))) == ()  # Redis only: no lane


class _Fence:
    def fence(self, seconds: float) -> None:
        pass

    def linger(self, seconds: float) -> None:
        pass


def test_a_helper_thread_runs_in_the_pass_context_fence_priority_and_node() -> None:
    fence = _Fence()

    def seen() -> tuple[object, CallPriority, str | None]:
        return current_fence(), current_priority("AttachNetworkInterface"), current_node()

    with ThreadPoolExecutor(2) as pool:
        with fenced_by(fence), foreground("n1"), attributed_to("n1"):
            here = submit_here(pool, seen).result()
            bare = pool.submit(seen).result()
    assert here == (fence, CallPriority(Priority.FOREGROUND, "n1"), "n1")
    # What a plain submit would have run with: unfenced, background, nobody's.
    assert bare == (None, CallPriority(Priority.BACKGROUND), None)


def test_a_lane_of_an_eni_held_ahead_is_marked_and_its_failure_is_not_the_passes() -> None:
    from dataclasses import replace
    from typing import Any, cast

    from tests.unit.test_plan import CFG, limits
    from vpcnet.control.act import act
    from vpcnet.control.common import Deadline
    from vpcnet.control.view import EniView, InstanceView
    from vpcnet.domain import Mode
    from vpcnet.errors import Ec2PermanentError, LockHeld
    from vpcnet.plan import NodeSpec

    ahead = replace(add(2), ahead=True)
    plan = Plan((AssignIps("eni-a", 3), add(1), ahead))
    assert [lane.ahead for lane in plan_lanes(plan)] == [False, False, True]

    class Ec2:
        def __init__(self, fail: Exception) -> None:
            self.fail = fail

        def assign_ips(self, eni_id: str, count: int) -> tuple[ipaddress.IPv4Address, ...]:
            return tuple(ipaddress.IPv4Address("10.0.0.20") + i for i in range(count))

        def create_eni(self, **kw: Any) -> EniView:
            raise self.fail

    primary = EniView("eni-a", "02:00:00:00:00:01", "subnet-1", ipaddress.IPv4Address("10.0.0.10"),
                      device_index=0)
    inst = InstanceView("i-1", "m5.xlarge", "az-1", "running", "subnet-1", "vpc-1",
                        primary.primary_ip, ("sg-1",), (primary,))
    spec = NodeSpec("c", "n1", "i-1", limits("m5.xlarge"), Mode.WARM, CFG, epoch="1")
    full = Ec2PermanentError("NetworkInterfaceLimitExceeded", "the account's ENI quota")
    acted = act(cast(Any, Ec2(full)), spec, inst, Plan((AssignIps("eni-a", 3), ahead)), Deadline(30))
    assert acted.failure is None and acted.ahead_failure is full  # the pass goes on
    assert len(next(e for e in acted.enis if e.eni_id == "eni-a").ips) == 3  # the assign kept
    # A needed ENI's failure still fails the pass; a lost lock fails it from any lane.
    needed = act(cast(Any, Ec2(full)), spec, inst, Plan((AssignIps("eni-a", 3), add(1))), Deadline(30))
    assert needed.failure is full and needed.ahead_failure is None
    lost = LockHeld("lost", delay=1.0)
    gone = act(cast(Any, Ec2(lost)), spec, inst, Plan((AssignIps("eni-a", 3), ahead)), Deadline(30))
    assert gone.failure is lost


def test_enis_ahead_back_off_long_after_a_permanent_failure_short_after_a_temporary_one() -> None:
    from vpcnet.control.provision import (
        ENIS_AHEAD_BACKOFF_SECONDS,
        ENIS_AHEAD_RETRY_SECONDS,
        enis_ahead_backoff,
    )
    from vpcnet.errors import Ec2PermanentError, TemporaryError

    assert ENIS_AHEAD_RETRY_SECONDS < ENIS_AHEAD_BACKOFF_SECONDS
    quota = Ec2PermanentError("InsufficientFreeAddressesInSubnet", "no free address")
    assert enis_ahead_backoff(quota) == ENIS_AHEAD_BACKOFF_SECONDS
    assert enis_ahead_backoff(TemporaryError("5xx", delay=1.0)) == ENIS_AHEAD_RETRY_SECONDS
