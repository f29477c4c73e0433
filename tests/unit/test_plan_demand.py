"""Waiting ADDs (the agent's demand) in the plans, why a pool cannot grow, and the
no-free-IPs taint's rule (it agrees with CNI STATUS)."""

from __future__ import annotations

import ipaddress

from tests.unit.test_plan import eni, ips, spec
from vpcnet.domain import EniRecord, Mode
from vpcnet.ipsupply import cannot_grow, no_ip_can_be_had
from vpcnet.plan import (
    AssignIps,
    AssignPrefixes,
    PoolUsage,
    RequestRelease,
    Targets,
    growth_blocker,
    plan_node,
)
from vpcnet.state.records import NodeRecord


def test_warm_demand_is_assigned_in_one_call_with_the_warm_target_on_top() -> None:
    s = spec("m5.4xlarge", Mode.WARM, Targets(warm_ip_target=5))  # 29 slots per ENI
    held = frozenset(ips("10.0.0.10", 5))  # the 5 warm IPs, all taken by the burst
    plan = plan_node(s, [eni(0, 5)], PoolUsage(assigned=held, demand=7))
    assert plan.actions == (AssignIps("eni-0", 7 + 5),)


def test_warm_never_trims_while_adds_wait() -> None:
    s = spec("m5.xlarge", Mode.WARM, Targets(warm_ip_target=1))
    # 10 IPs, 1 assigned: a surplus, but an ADD waits (its IP is on its way to the agent).
    usage = PoolUsage(assigned=frozenset(ips("10.0.0.10", 1)), demand=1)
    assert not any(isinstance(a, RequestRelease) for a in plan_node(s, [eni(0, 10)], usage).actions)
    calm = PoolUsage(assigned=frozenset(ips("10.0.0.10", 1)))
    assert any(isinstance(a, RequestRelease) for a in plan_node(s, [eni(0, 10)], calm).actions)


def test_prefix_demand_asks_for_whole_prefixes() -> None:
    s = spec("m5.xlarge", Mode.PREFIX, Targets(warm_prefix_target=1))
    p = ipaddress.IPv4Network("10.0.0.16/28")
    usage = PoolUsage(assigned=frozenset(p), demand=20)  # every address held, 20 waiting
    plan = plan_node(s, [eni(0, prefixes=(p,))], usage)
    assert plan.actions == (AssignPrefixes("eni-0", 2 + 1),)


def test_growth_blocker_names_the_limits_only_when_every_slot_is_taken() -> None:
    s = spec("t3.small", Mode.FULL)  # 3 ENIs x 3 slots
    assert growth_blocker(s, [eni(0, 3), eni(1, 3)]) == ""  # an ENI may still be attached
    assert growth_blocker(s, [eni(0, 3), eni(1, 3), eni(2, 2)]) == ""  # a slot is left
    why = growth_blocker(s, [eni(0, 3), eni(1, 3), eni(2, 3)])
    assert why.startswith("ENI and IP limits reached: 3 of 3 ENIs") and "t3.small" in why


def _no_ip(no_growth: str, usage: PoolUsage) -> bool:
    record = EniRecord(
        eni_id="eni-0", mac="02:00:00:00:00:00", device_index=0, subnet_id="subnet-1",
        subnet_cidr=ipaddress.IPv4Network("10.0.0.0/16"), primary_ip=ipaddress.IPv4Address("10.0.0.4"),
        ips=ips("10.0.0.10", 2), is_primary=True,
    )
    return no_ip_can_be_had((record,), usage, cannot_grow(NodeRecord(no_growth=no_growth)))


def test_the_taint_rule_follows_what_status_answers() -> None:
    both = frozenset(ips("10.0.0.10", 2))
    one = frozenset(ips("10.0.0.10", 1))
    limits = "ENI and IP limits reached"
    assert _no_ip(limits, PoolUsage(assigned=both))
    assert not _no_ip("", PoolUsage(assigned=both))  # the pool can grow
    assert not _no_ip(limits, PoolUsage(assigned=one))  # one free
    # One cooling down: an ADD waits for it, STATUS says the node can start a pod.
    assert not _no_ip(limits, PoolUsage(assigned=one, cooling=both - one))
