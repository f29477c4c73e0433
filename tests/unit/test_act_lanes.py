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
