"""Pure plans per IP family: one /80 on the primary ENI for ipv6 and dual nodes, no IPv4
growth on ipv6 nodes, the /80 release flow through the agent, the growth blocker, the
join-call bound and capacity (max pods) per family."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from vpcnet.control.view import EniView
from vpcnet.domain import EniRecord, InstanceLimits, IpFamily, IPv4, IPv6Net, Mode
from vpcnet.errors import ConfigError
from vpcnet.ipsupply import no_ip_can_be_had
from vpcnet.limits import bundled_limits, max_pod_ips, max_pods
from vpcnet.plan import (
    AddEni,
    AssignIps,
    AssignIpv6Prefixes,
    AssignPrefixes,
    EniConfig,
    NodeSpec,
    PoolUsage,
    RequestRelease,
    Targets,
    UnassignIpv6Prefixes,
    growth_blocker,
    join_calls,
    min_join_calls,
    plan_node,
)
from vpcnet.wellknown import TAG_CLUSTER

CLUSTER = "c1"
CFG = EniConfig("subnet-0123456789abcdef0", ("sg-0123456789abcdef0",))
SUBNET6 = ipaddress.IPv6Network("2001:db8:0:1::/64")
P1 = ipaddress.IPv6Network("2001:db8:0:1:1::/80")
P2 = ipaddress.IPv6Network("2001:db8:0:1:2::/80")


def limits(t: str = "m5.large") -> InstanceLimits:
    lim = bundled_limits(t)
    assert lim is not None
    return lim


def spec(family: IpFamily, mode: Mode = Mode.FULL, t: str = "m5.large",
         subnet6: IPv6Net | None = SUBNET6) -> NodeSpec:
    return NodeSpec(CLUSTER, "node-a", "i-0abc", limits(t), mode, CFG, Targets(), "1",
                    ip_family=family, ipv6_subnet_cidr=subnet6)


def eni(idx: int, n_ips: int = 0, v6: tuple[IPv6Net, ...] = ()) -> EniView:
    return EniView(
        eni_id=f"eni-{idx}", mac=f"02:00:00:00:00:0{idx}", subnet_id=CFG.subnet_id,
        primary_ip=ipaddress.IPv4Address(f"10.0.{idx}.4"),
        ips=tuple(ipaddress.IPv4Address(f"10.0.{idx}.10") + i for i in range(n_ips)),
        device_index=idx, attachment_id=f"eni-attach-{idx}", delete_on_termination=True,
        tags={TAG_CLUSTER: CLUSTER} if idx else {}, ipv6_prefixes=v6,
    )


def ipv6_actions(actions: tuple[object, ...]) -> list[object]:
    return [a for a in actions if isinstance(a, AssignIpv6Prefixes | UnassignIpv6Prefixes)
            or (isinstance(a, RequestRelease) and a.ipv6_prefixes)]


# --- assigning the /80 ------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(Mode))
def test_a_dual_node_gets_the_ipv4_plan_and_one_80_on_its_primary(mode: Mode) -> None:
    ipv4 = plan_node(spec(IpFamily.IPV4, mode), [eni(0)])
    dual = plan_node(spec(IpFamily.DUAL, mode), [eni(0)])
    assert dual.actions == ipv4.actions + (AssignIpv6Prefixes("eni-0", 1),)
    assert dual.ec2_calls()["AssignIpv6Addresses"] == 1


@pytest.mark.parametrize("mode", list(Mode))
def test_an_ipv4_node_plans_no_ipv6(mode: Mode) -> None:
    assert not ipv6_actions(plan_node(spec(IpFamily.IPV4, mode), [eni(0)]).actions)


@pytest.mark.parametrize("mode", list(Mode))
def test_an_ipv6_node_plans_its_80_and_no_ipv4_growth(mode: Mode) -> None:
    plan = plan_node(spec(IpFamily.IPV6, mode), [eni(0)], PoolUsage(demand=5))
    assert plan.actions == (AssignIpv6Prefixes("eni-0", 1),)
    assert not any(isinstance(a, AssignIps | AssignPrefixes | AddEni) for a in plan.actions)


def test_a_node_holding_its_80_plans_no_second() -> None:
    assert not ipv6_actions(plan_node(spec(IpFamily.DUAL), [eni(0, v6=(P1,))]).actions)
    assert not plan_node(spec(IpFamily.IPV6, Mode.WARM), [eni(0, v6=(P1,))])


def test_an_ipv6_node_gives_unused_ipv4_secondaries_back() -> None:
    # A node turned ipv4 -> ipv6: its IPv4 pool drains as a trim would (agent first).
    plan = plan_node(spec(IpFamily.IPV6, Mode.WARM), [eni(0, 9, v6=(P1,))], PoolUsage())
    released = [a for a in plan.actions if isinstance(a, RequestRelease)]
    assert len(released) == 1 and len(released[0].ips) == 9 and not released[0].ipv6_prefixes


@pytest.mark.parametrize("family", [IpFamily.IPV6, IpFamily.DUAL])
def test_a_subnet_without_ipv6_is_a_config_error_naming_it(family: IpFamily) -> None:
    with pytest.raises(ConfigError, match=f"subnet {CFG.subnet_id} has no IPv6 CIDR"):
        plan_node(spec(family, subnet6=None), [eni(0)])


def test_an_ipv4_node_needs_no_ipv6_subnet() -> None:
    assert plan_node(spec(IpFamily.IPV4, subnet6=None), [eni(0)])


def test_ipv6_on_a_xen_instance_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="t2.large"):
        plan_node(spec(IpFamily.DUAL, Mode.WARM, t="t2.large"), [eni(0)])


# --- giving a /80 back ------------------------------------------------------------------


def test_an_unwanted_80_is_first_asked_back_from_the_agent() -> None:
    plan = plan_node(spec(IpFamily.IPV4, Mode.WARM), [eni(0, 9, v6=(P1,))])
    assert ipv6_actions(plan.actions) == [RequestRelease((), (P1,))]
    assert not any(isinstance(a, UnassignIpv6Prefixes) for a in plan.actions)


def test_an_asked_80_waits_for_the_agent() -> None:
    usage = PoolUsage(release_requested6=frozenset({P1}))
    assert not ipv6_actions(plan_node(spec(IpFamily.IPV4, Mode.WARM), [eni(0, 9, v6=(P1,))], usage).actions)


def test_an_80_goes_back_to_ec2_once_the_agent_confirmed_it() -> None:
    usage = PoolUsage(release_requested6=frozenset({P1}), release_confirmed6=frozenset({P1}))
    plan = plan_node(spec(IpFamily.IPV4, Mode.WARM), [eni(0, 9, v6=(P1,))], usage)
    assert ipv6_actions(plan.actions) == [UnassignIpv6Prefixes("eni-0", (P1,))]
    assert plan.ec2_calls()["UnassignIpv6Addresses"] == 1


def test_an_80_holding_an_assigned_address_is_never_unassigned() -> None:
    pod = P1.network_address + 7
    usage = PoolUsage(assigned6=frozenset({pod}), release_requested6=frozenset({P1}),
                      release_confirmed6=frozenset({P1}))
    assert not ipv6_actions(plan_node(spec(IpFamily.IPV4, Mode.WARM), [eni(0, 9, v6=(P1,))], usage).actions)


def test_a_stale_confirmation_alone_never_unassigns() -> None:
    usage = PoolUsage(release_confirmed6=frozenset({P1}))  # its release-req lost
    plan = plan_node(spec(IpFamily.IPV4, Mode.WARM), [eni(0, 9, v6=(P1,))], usage)
    assert ipv6_actions(plan.actions) == [RequestRelease((), (P1,))]


def test_a_second_80_is_given_back_and_the_lowest_kept() -> None:
    plan = plan_node(spec(IpFamily.DUAL, Mode.WARM), [eni(0, 9, v6=(P2, P1)), eni(1, 9, v6=())])
    assert ipv6_actions(plan.actions) == [RequestRelease((), (P2,))]


def test_a_dual_node_whose_80_is_leaving_gets_a_new_one() -> None:
    usage = PoolUsage(release_requested6=frozenset({P1}))
    plan = plan_node(spec(IpFamily.DUAL, Mode.WARM), [eni(0, 9, v6=(P1,))], usage)
    assert ipv6_actions(plan.actions) == [AssignIpv6Prefixes("eni-0", 1)]


# --- why the pool cannot grow; the join-call bound ------------------------------------


def test_an_ipv6_node_with_its_80_can_always_grow() -> None:
    full = [eni(i, 9) for i in range(3)]  # m5.large: every IPv4 slot taken
    assert growth_blocker(spec(IpFamily.IPV4), full).startswith("ENI and IP limits reached")
    assert growth_blocker(spec(IpFamily.IPV6), [dataclasses.replace(full[0], ipv6_prefixes=(P1,)), *full[1:]]) == ""


def test_a_dual_node_says_why_its_ipv6_cannot_come() -> None:
    why = growth_blocker(spec(IpFamily.DUAL, subnet6=None), [eni(0)])
    assert f"subnet {CFG.subnet_id} has no IPv6 CIDR" in why
    slots = dataclasses.replace(limits(), ipv6_per_eni=1)
    full6 = dataclasses.replace(eni(0), ipv6_addresses=(SUBNET6.network_address + 5,))
    held = growth_blocker(dataclasses.replace(spec(IpFamily.DUAL), limits=slots), [full6])
    assert "holds its 1 IPv6 addresses" in held


@pytest.mark.parametrize("family", [IpFamily.IPV6, IpFamily.DUAL])
def test_the_join_bound_includes_the_ipv6_call(family: IpFamily) -> None:
    ipv4 = min_join_calls(spec(IpFamily.IPV4))
    got = min_join_calls(spec(family, subnet6=None))  # a fresh node in a dual-stack subnet
    assert got.get("AssignIpv6Addresses") == 1
    if family is IpFamily.DUAL:
        assert got == {**ipv4, "AssignIpv6Addresses": 1}
    else:
        assert got == {"DescribeInstances": 1, "AssignIpv6Addresses": 1}
    assert join_calls(plan_node(spec(family), [eni(0)])) == got


# --- the no-free-IPs rule and capacity -------------------------------------------------


def record(v6: tuple[IPv6Net, ...] = (), n_ips: int = 0) -> EniRecord:
    return eni(0, n_ips, v6).to_record(ipaddress.IPv4Network("10.0.0.0/16"), SUBNET6)


def test_an_ipv6_node_without_a_live_80_has_no_address_to_give() -> None:
    assert no_ip_can_be_had([record()], PoolUsage(), "no IPv6", IpFamily.IPV6)
    assert not no_ip_can_be_had([record((P1,))], PoolUsage(), "full", IpFamily.IPV6)
    leaving = PoolUsage(release_requested6=frozenset({P1}))
    assert no_ip_can_be_had([record((P1,))], leaving, "no IPv6", IpFamily.IPV6)
    assert not no_ip_can_be_had([record()], PoolUsage(), "", IpFamily.IPV6)  # it can still come


def test_a_dual_node_needs_both_families() -> None:
    taken = PoolUsage(assigned=frozenset(IPv4(f"10.0.0.{10 + i}") for i in range(2)))
    assert no_ip_can_be_had([record((P1,), 2)], taken, "full", IpFamily.DUAL)  # no IPv4 left
    assert no_ip_can_be_had([record((), 4)], taken, "no IPv6", IpFamily.DUAL)  # no /80
    assert not no_ip_can_be_had([record((P1,), 4)], taken, "full", IpFamily.DUAL)
    # The IPv4 rule alone ignores IPv6, as before.
    assert not no_ip_can_be_had([record((), 4)], taken, "no IPv6")


def test_max_pods_per_family() -> None:
    lim = limits("m5.large")
    for mode in Mode:
        assert max_pods(lim, mode, IpFamily.IPV4) == max_pod_ips(lim, mode)
        assert max_pods(lim, mode, IpFamily.IPV6) == 110  # no vCPUs known: the small cap
        assert max_pods(lim, mode, IpFamily.IPV6, vcpus=48) == 250
        assert max_pods(lim, mode, IpFamily.DUAL) == min(max_pod_ips(lim, mode), 110)
    assert max_pods(lim, Mode.FULL, IpFamily.DUAL) == 27  # 3 ENIs x 9: IPv4 binds
    assert max_pods(lim, Mode.PREFIX, IpFamily.DUAL) == 110  # 432 /28 addresses: the cap binds
    assert max_pods(lim, Mode.FULL, IpFamily.IPV6, vcpus=29) == 110


# --- lanes and the write-back ----------------------------------------------------------


def test_the_80_runs_in_the_primarys_lane_and_grows_its_pool() -> None:
    from vpcnet.control.lanes import plan_lanes

    lanes = plan_lanes(plan_node(spec(IpFamily.DUAL), [eni(0)]))
    first = lanes[0]
    assert first.actions[-1] == AssignIpv6Prefixes("eni-0", 1) and first.grows_pool
    assert all(a.eni_id == "eni-0" for a in first.actions if not isinstance(a, AddEni))


def test_the_write_back_stores_the_family_the_80s_and_the_subnets_64() -> None:
    from vpcnet.control.inputs import ProvisionInputs
    from vpcnet.control.view import InstanceView
    from vpcnet.control.writeback import plan_write_back

    cidr = ipaddress.IPv4Network("10.0.0.0/16")
    inst = InstanceView("i-0abc", "m5.large", "az-1", "running", CFG.subnet_id, "vpc-1",
                        ipaddress.IPv4Address("10.0.0.4"), CFG.security_groups, (eni(0, 9, (P1,)),))
    given = ProvisionInputs(
        cluster=CLUSTER, node="n1", previous=None, previous_enis=(), instance=inst,
        limits=limits(), usage=PoolUsage(), mode=Mode.WARM, eni_config=CFG,
        subnet_cidrs={CFG.subnet_id: cidr}, targets=Targets(), epoch="1700000000.000",
        ip_family=IpFamily.IPV4, subnet_ipv6_cidrs={CFG.subnet_id: SUBNET6},
    )
    assert given.spec().ip_family is IpFamily.IPV4 and given.spec().ipv6_subnet_cidr == SUBNET6
    plan = plan_node(given.spec(), inst.enis, given.usage)
    wb = plan_write_back(given, plan, inst.enis, ())
    assert wb.record.ip_family == "ipv4" and wb.record.to_redis()["ip_family"] == "ipv4"
    assert wb.enis[0].ipv6_prefixes == (P1,) and wb.enis[0].subnet_ipv6_cidr == SUBNET6
    assert wb.release_requests == (P1,)  # an ipv4 node asks its /80 back, by CIDR
    done = plan_write_back(given, plan, inst.enis, (P1,))
    assert done.released == (P1,) and done.replaces_state


def test_a_type_without_ipv6_is_a_config_error_and_its_limits_cache_keeps_the_count() -> None:
    from vpcnet.limits import limits_from_json, limits_to_json

    none6 = dataclasses.replace(limits(), ipv6_per_eni=0)
    with pytest.raises(ConfigError, match="supports no IPv6"):
        plan_node(dataclasses.replace(spec(IpFamily.DUAL), limits=none6), [eni(0)])
    assert limits_from_json(limits_to_json(none6)) == none6
    assert limits_from_json(limits_to_json(limits())).ipv6_per_eni is None


def test_no_80_is_asked_for_when_the_primarys_ipv6_slots_are_full() -> None:
    one_slot = dataclasses.replace(spec(IpFamily.DUAL), limits=dataclasses.replace(limits(), ipv6_per_eni=1))
    full6 = dataclasses.replace(eni(0), ipv6_addresses=(SUBNET6.network_address + 5,))
    assert not ipv6_actions(plan_node(one_slot, [full6]).actions)
    assert "holds its 1 IPv6 addresses" in growth_blocker(one_slot, [full6])
