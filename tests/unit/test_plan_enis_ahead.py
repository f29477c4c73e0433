"""Warm mode's ENIs held ahead (``Targets.attached_enis``): attached with no IP beyond
what the targets want, so that demand is met by AssignPrivateIpAddresses alone, in one
call per ENI; a trim gives back IPs, never those ENIs; full and prefix mode ignore it.
They are planned only for a READY node (``NodeSpec.enis_ahead``: a join is
DescribeInstances + Assign), never while ADDs wait, and marked ``AddEni.ahead``."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from tests.unit.test_plan import eni, ips
from tests.unit.test_plan import spec as joining_spec
from vpcnet.domain import Mode
from vpcnet.plan import (
    AddEni,
    AssignIps,
    AssignPrefixes,
    NodeSpec,
    PoolUsage,
    RequestRelease,
    Targets,
    UnassignIps,
    min_join_calls,
    plan_node,
)

ALL = -1


def spec(t: str, mode: Mode, targets: Targets) -> NodeSpec:
    """A READY node's spec: the control plane lets it hold ENIs ahead."""
    return replace(joining_spec(t, mode, targets), enis_ahead=True)


def _adds(actions: tuple[object, ...]) -> list[tuple[int, int, int]]:
    return [(a.device_index, a.ip_count, a.prefix_count) for a in actions if isinstance(a, AddEni)]


def test_a_ready_warm_node_attaches_every_eni_ahead_with_only_the_target_ips() -> None:
    s = spec("m5.4xlarge", Mode.WARM, Targets(warm_ip_target=5, attached_enis=ALL))  # 8 ENIs
    plan = plan_node(s, [eni(0)])
    assert plan.actions[0] == AssignIps("eni-0", 5)  # the IPs stay on the warm target
    assert _adds(plan.actions) == [(d, 0, 0) for d in range(1, 8)]
    assert len({a.client_token for a in plan.actions if isinstance(a, AddEni)}) == 7
    assert all(a.ahead for a in plan.actions if isinstance(a, AddEni))


def test_a_joining_warm_node_plans_no_eni_ahead_its_join_is_one_assign() -> None:
    targets = Targets(warm_ip_target=5, attached_enis=ALL)
    s = joining_spec("m5.4xlarge", Mode.WARM, targets)
    assert not s.enis_ahead  # the default: only the control plane, seeing READY, turns it on
    assert plan_node(s, [eni(0)]).actions == (AssignIps("eni-0", 5),)
    assert min_join_calls(s) == {"DescribeInstances": 1, "AssignPrivateIpAddresses": 1}
    # Once READY, the next pass adds them.
    assert len(_adds(plan_node(replace(s, enis_ahead=True), [eni(0, 5)]).actions)) == 7


def test_no_eni_ahead_while_adds_wait_and_needed_enis_are_not_marked_ahead() -> None:
    s = spec("m5.xlarge", Mode.WARM, Targets(warm_ip_target=2, attached_enis=ALL))  # 4 x 14
    full = eni(0, 14)
    plan = plan_node(s, [full, eni(1)], PoolUsage(assigned=frozenset(full.ips), demand=20))
    adds = [a for a in plan.actions if isinstance(a, AddEni)]
    assert [(a.device_index, a.ip_count, a.ahead) for a in adds] == [(2, 8, False)]
    assert plan.actions[0] == AssignIps("eni-1", 14)


def test_a_count_caps_the_enis_held_ahead() -> None:
    s = spec("m5.4xlarge", Mode.WARM, Targets(warm_ip_target=5, attached_enis=3))
    assert _adds(plan_node(s, [eni(0)]).actions) == [(1, 0, 0), (2, 0, 0)]
    held = [eni(0, 5), eni(1), eni(2)]
    assert plan_node(s, held, PoolUsage()).actions == ()  # converged: nothing to do
    big = spec("t3.small", Mode.WARM, Targets(warm_ip_target=1, attached_enis=99))  # 3 ENIs
    assert _adds(plan_node(big, [eni(0)]).actions) == [(1, 0, 0), (2, 0, 0)]


def test_enis_the_targets_need_carry_their_ips_and_the_rest_come_empty() -> None:
    s = spec("m5.xlarge", Mode.WARM, Targets(warm_ip_target=2, attached_enis=ALL))  # 4 x 14
    served = [eni(0, 14), eni(1, 8)]
    usage = PoolUsage(assigned=frozenset(ip for e in served for ip in e.ips))  # the burst's
    plan = plan_node(s, served, usage)
    assert plan.actions[0] == AssignIps("eni-1", 2)
    assert [(a.device_index, a.ip_count, a.ahead) for a in plan.actions
            if isinstance(a, AddEni)] == [(2, 0, True), (3, 0, True)]


def test_demand_on_a_node_with_enis_ahead_is_met_by_assigns_only_one_per_eni() -> None:
    s = spec("m5.4xlarge", Mode.WARM, Targets(warm_ip_target=5, attached_enis=ALL))  # 29 slots
    enis = [eni(0, 5), *(eni(d) for d in range(1, 8))]
    held = frozenset(ips("10.0.0.10", 5))
    plan = plan_node(s, enis, PoolUsage(assigned=held, demand=95))
    # 95 waiting + 5 warm on top of the 5 held: 24 more on the primary, then 29 + 29 + 18.
    assert plan.actions == (AssignIps("eni-0", 24), AssignIps("eni-1", 29),
                            AssignIps("eni-2", 29), AssignIps("eni-3", 18))
    assert plan.ec2_calls() == {"AssignPrivateIpAddresses": 4}


def test_a_trim_gives_back_ips_but_never_an_eni_held_ahead() -> None:
    s = spec("m5.xlarge", Mode.WARM, Targets(warm_ip_target=1, attached_enis=ALL))
    enis = [eni(0, 14), eni(1, 14), eni(2), eni(3)]  # the burst is over: 28 IPs, none used
    plan = plan_node(s, enis, PoolUsage())
    asked = [a for a in plan.actions if isinstance(a, RequestRelease)]
    assert len(asked) == 1 and len(asked[0].ips) == 27  # all but the warm one
    assert not _adds(plan.actions)
    # Confirmed: unassigned, and the emptied ENIs stay (no action ever detaches one).
    back = frozenset(asked[0].ips)
    plan = plan_node(s, enis, PoolUsage(release_requested=back, release_confirmed=back))
    assert {type(a) for a in plan.actions} == {UnassignIps}
    empty = [eni(0, 1), eni(1), eni(2), eni(3)]
    assert plan_node(s, empty, PoolUsage()).actions == ()


def test_an_eni_lost_from_the_set_held_ahead_is_attached_again() -> None:
    s = spec("m5.xlarge", Mode.WARM, Targets(warm_ip_target=1, attached_enis=ALL))
    plan = plan_node(s, [eni(0, 1), eni(1), eni(3)], PoolUsage())
    assert _adds(plan.actions) == [(2, 0, 0)]


def test_zero_keeps_the_aws_vpc_cni_behaviour() -> None:
    s = spec("m5.4xlarge", Mode.WARM, Targets(warm_ip_target=5, attached_enis=0))
    assert plan_node(s, [eni(0)]).actions == (AssignIps("eni-0", 5),)


def test_full_and_prefix_mode_ignore_the_enis_held_ahead() -> None:
    targets = Targets(warm_prefix_target=1, attached_enis=ALL)
    full = plan_node(spec("m5.xlarge", Mode.FULL, targets), [eni(0)])
    assert _adds(full.actions) == [(1, 14, 0), (2, 14, 0), (3, 14, 0)]
    p = ipaddress.IPv4Network("10.0.0.16/28")
    prefix = plan_node(spec("m5.xlarge", Mode.PREFIX, targets), [eni(0, prefixes=(p,))],
                       PoolUsage(assigned=frozenset(ips("10.0.0.16", 1))))
    assert prefix.actions == (AssignPrefixes("eni-0", 1),)


def test_an_ipv6_only_node_holds_no_eni_ahead() -> None:
    from dataclasses import replace

    from vpcnet.domain import IpFamily

    s = replace(spec("m5.xlarge", Mode.WARM, Targets(attached_enis=ALL)),
                ip_family=IpFamily.IPV6, ipv6_subnet_cidr=ipaddress.IPv6Network("2001:db8::/64"))
    assert not _adds(plan_node(s, [eni(0)]).actions)
