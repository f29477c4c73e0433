"""Pure plans: full / warm / prefix, their EC2 call minimum, and safety properties."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpcnet.control.view import EniView
from vpcnet.domain import InstanceLimits, IPv4, Mode
from vpcnet.errors import ConfigError
from vpcnet.limits import bundled_limits
from vpcnet.plan import (
    AddEni,
    AssignIps,
    AssignPrefixes,
    EniConfig,
    NodeSpec,
    PoolUsage,
    RequestRelease,
    SetDeleteOnTermination,
    Targets,
    UnassignIps,
    UnassignPrefixes,
    client_token,
    join_calls,
    min_join_calls,
    plan_node,
)
from vpcnet.wellknown import TAG_CLUSTER

CLUSTER = "c1"
CFG = EniConfig("subnet-0123456789abcdef0", ("sg-0123456789abcdef0",))


def limits(t: str) -> InstanceLimits:
    lim = bundled_limits(t)
    assert lim is not None
    return lim


def spec(t: str = "m5.xlarge", mode: Mode = Mode.FULL, targets: Targets | None = None,
         epoch: str = "1") -> NodeSpec:
    return NodeSpec(CLUSTER, "node-a", "i-0abc", limits(t), mode, CFG, targets or Targets(), epoch)


def ips(base: str, n: int) -> tuple[IPv4, ...]:
    start = ipaddress.IPv4Address(base)
    return tuple(start + i for i in range(n))


def eni(idx: int, n_ips: int = 0, *, owned: bool = True, dot: bool = True,
        prefixes: tuple[ipaddress.IPv4Network, ...] = ()) -> EniView:
    return EniView(
        eni_id=f"eni-{idx}", mac=f"02:00:00:00:00:0{idx}", subnet_id=CFG.subnet_id,
        primary_ip=ipaddress.IPv4Address(f"10.0.{idx}.4"), ips=ips(f"10.0.{idx}.10", n_ips),
        prefixes=prefixes, device_index=idx, attachment_id=f"eni-attach-{idx}",
        delete_on_termination=dot, tags={TAG_CLUSTER: CLUSTER} if owned and idx else {},
    )


# --- full -------------------------------------------------------------------------------


def test_full_fresh_m5_xlarge_is_the_seed_behaviour() -> None:
    plan = plan_node(spec(), [eni(0)])
    assert plan.actions[0] == AssignIps("eni-0", 14)
    adds = [a for a in plan.actions if isinstance(a, AddEni)]
    assert [(a.device_index, a.ip_count, a.prefix_count) for a in adds] == [(1, 14, 0), (2, 14, 0), (3, 14, 0)]
    assert join_calls(plan) == {
        "DescribeInstances": 1, "AssignPrivateIpAddresses": 1, "CreateNetworkInterface": 3,
        "AttachNetworkInterface": 3, "ModifyNetworkInterfaceAttribute": 3,
    }
    assert min_join_calls(spec()) == join_calls(plan)


@pytest.mark.parametrize(("t", "calls"), [("t3.nano", 5), ("m5.large", 8), ("m5.xlarge", 11), ("c5.18xlarge", 44)])
def test_full_minimum_calls_per_type(t: str, calls: int) -> None:
    assert sum(min_join_calls(spec(t)).values()) == calls


def test_full_complete_node_plans_nothing() -> None:
    enis = [eni(0, 14), eni(1, 14), eni(2, 14), eni(3, 14)]
    assert not plan_node(spec(), enis)
    assert join_calls(plan_node(spec(), enis)) == {"DescribeInstances": 1}


def test_full_resumes_a_partial_pass() -> None:
    enis = [eni(0, 14), eni(1, 3, dot=False)]
    plan = plan_node(spec(), enis)
    assert SetDeleteOnTermination("eni-1", "eni-attach-1") in plan.actions
    assert AssignIps("eni-1", 11) in plan.actions
    assert [a.device_index for a in plan.actions if isinstance(a, AddEni)] == [2, 3]


def test_foreign_enis_count_towards_the_limit_but_are_not_pooled() -> None:
    enis = [eni(0, 14), eni(1, 2, owned=False, dot=False)]
    plan = plan_node(spec(), enis)
    assert not any(getattr(a, "eni_id", "") == "eni-1" for a in plan.actions)
    assert [a.device_index for a in plan.actions if isinstance(a, AddEni)] == [2, 3]


def test_client_tokens_are_deterministic_and_distinct() -> None:
    a = plan_node(spec(), [eni(0)])
    b = plan_node(spec(), [eni(0)])
    tokens = [x.client_token for x in a.actions if isinstance(x, AddEni)]
    assert tokens == [x.client_token for x in b.actions if isinstance(x, AddEni)]
    assert len(set(tokens)) == 3 and all(len(t) <= 64 for t in tokens)
    other_epoch = plan_node(spec(epoch="2"), [eni(0)])
    assert not set(tokens) & {x.client_token for x in other_epoch.actions if isinstance(x, AddEni)}
    assert client_token("c", "i", "e", 1, "s", ["b", "a"], 3, 0) == client_token("c", "i", "e", 1, "s", ["a", "b"], 3, 0)


# --- warm -------------------------------------------------------------------------------


def test_warm_eni_target_fills_one_eni_on_join() -> None:
    plan = plan_node(spec("m5.large", Mode.WARM), [eni(0)], PoolUsage())
    assert plan.actions == (AssignIps("eni-0", 9),)


def test_warm_eni_target_adds_an_eni_when_the_first_fills() -> None:
    pool = eni(0, 9)
    usage = PoolUsage(assigned=frozenset(pool.ips[:5]))
    plan = plan_node(spec("m5.large", Mode.WARM), [pool], usage)
    assert [(a.device_index, a.ip_count) for a in plan.actions if isinstance(a, AddEni)] == [(1, 9)]


def test_warm_ip_target_tops_up_existing_eni_first() -> None:
    t = Targets(warm_ip_target=5)
    pool = eni(0, 4)
    usage = PoolUsage(assigned=frozenset(pool.ips[:3]))
    plan = plan_node(spec("m5.large", Mode.WARM, t), [pool], usage)
    assert plan.actions == (AssignIps("eni-0", 4),)  # 3 used + 5 warm = 8 = 4 + 4


def test_warm_trim_requests_then_unassigns_only_confirmed() -> None:
    t = Targets(warm_ip_target=2, minimum_ip_target=3)
    pool = eni(0, 9)
    usage = PoolUsage(assigned=frozenset(pool.ips[:1]))
    plan = plan_node(spec("m5.large", Mode.WARM, t), [pool], usage)
    (req,) = plan.actions
    assert isinstance(req, RequestRelease) and len(req.ips) == 6  # keep 1 used + 2 warm
    assert not set(req.ips) & usage.assigned
    # the agent confirmed 4 of the 6: those go back to EC2, nothing new is requested
    confirmed = frozenset(req.ips[:4])
    usage2 = PoolUsage(assigned=usage.assigned, release_requested=frozenset(req.ips),
                       release_confirmed=confirmed)
    plan2 = plan_node(spec("m5.large", Mode.WARM, t), [pool], usage2)
    assert plan2.actions == (UnassignIps("eni-0", tuple(sorted(confirmed))),)


def test_warm_never_trims_cooling_ips_and_honours_minimum() -> None:
    t = Targets(warm_ip_target=0, minimum_ip_target=6)
    pool = eni(0, 9)
    usage = PoolUsage(cooling=frozenset(pool.ips[:2]))
    plan = plan_node(spec("m5.large", Mode.WARM, t), [pool], usage)
    (req,) = plan.actions
    assert isinstance(req, RequestRelease) and len(req.ips) == 3
    assert not set(req.ips) & usage.cooling


# --- prefix -----------------------------------------------------------------------------


def pfx(i: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"10.0.128.{i * 16}/28")


def test_prefix_join_assigns_one_prefix_to_the_primary() -> None:
    plan = plan_node(spec("m5.large", Mode.PREFIX), [eni(0)], PoolUsage())
    assert plan.actions == (AssignPrefixes("eni-0", 1),)
    assert join_calls(plan) == {"DescribeInstances": 1, "AssignPrivateIpAddresses": 1}


def test_prefix_keeps_a_warm_prefix_as_pods_arrive() -> None:
    primary = eni(0, prefixes=(pfx(0),))
    usage = PoolUsage(assigned=frozenset([next(iter(pfx(0)))]))
    plan = plan_node(spec("m5.large", Mode.PREFIX), [primary], usage)
    assert plan.actions == (AssignPrefixes("eni-0", 1),)


def test_prefix_releases_a_prefix_only_when_all_16_confirmed() -> None:
    primary = eni(0, prefixes=(pfx(0), pfx(1), pfx(2)))
    plan = plan_node(spec("m5.large", Mode.PREFIX), [primary], PoolUsage())
    (req,) = plan.actions
    assert isinstance(req, RequestRelease) and len(req.ips) == 32  # keep 1 warm prefix
    some = frozenset(list(pfx(2))[:15])
    partial = PoolUsage(release_requested=frozenset(req.ips), release_confirmed=some)
    assert not any(isinstance(a, UnassignPrefixes) for a in plan_node(spec("m5.large", Mode.PREFIX), [primary], partial).actions)
    full = PoolUsage(release_requested=frozenset(req.ips), release_confirmed=frozenset(pfx(2)))
    actions = plan_node(spec("m5.large", Mode.PREFIX), [primary], full).actions
    assert UnassignPrefixes("eni-0", (pfx(2),)) in actions


def test_prefix_keeps_a_confirmed_prefix_the_control_plane_did_not_request() -> None:
    # A stale release-ok (its release-req lost with a write, the prefix then put back in
    # use) must not hand a prefix back to EC2: release needs release-req and release-ok.
    primary = eni(0, prefixes=(pfx(0), pfx(1)))
    s = spec("m5.large", Mode.PREFIX, Targets(warm_prefix_target=2))
    for requested in (frozenset(), frozenset(list(pfx(1))[:15])):
        stale = PoolUsage(release_requested=requested, release_confirmed=frozenset(pfx(1)))
        actions = plan_node(s, [primary], stale).actions
        assert not any(isinstance(a, UnassignPrefixes) for a in actions), requested
    both = PoolUsage(release_requested=frozenset(pfx(1)), release_confirmed=frozenset(pfx(1)))
    assert UnassignPrefixes("eni-0", (pfx(1),)) in plan_node(s, [primary], both).actions


def test_warm_keeps_a_confirmed_ip_the_control_plane_did_not_request() -> None:
    pool = eni(0, 9)
    s = spec("m5.large", Mode.WARM, Targets(warm_ip_target=9))
    stale = PoolUsage(release_confirmed=frozenset(pool.ips[:3]))
    assert not any(isinstance(a, UnassignIps) for a in plan_node(s, [pool], stale).actions)


def test_prefix_mode_needs_nitro() -> None:
    with pytest.raises(ConfigError):
        plan_node(spec("t2.micro", Mode.PREFIX), [eni(0)], PoolUsage())


# --- properties -------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    t=st.sampled_from(["t3.nano", "m5.large", "m5.xlarge", "c5.4xlarge"]),
    mode=st.sampled_from([Mode.FULL, Mode.WARM]),
    n_enis=st.integers(1, 4),
    fill=st.lists(st.integers(0, 30), min_size=4, max_size=4),
    warm_ip=st.integers(0, 20),
    minimum=st.integers(0, 40),
    data=st.data(),
)
def test_plans_never_break_limits_or_take_ips_from_pods(
    t: str, mode: Mode, n_enis: int, fill: list[int], warm_ip: int, minimum: int, data: st.DataObject
) -> None:
    s = spec(t, mode, Targets(warm_ip_target=warm_ip, minimum_ip_target=minimum))
    slots = s.limits.ipv4_per_eni - 1
    enis = [eni(i, min(fill[i], slots)) for i in range(min(n_enis, s.limits.max_enis))]
    pool = [ip for e in enis for ip in e.ips]
    assigned = frozenset(data.draw(st.lists(st.sampled_from(pool), unique=True)) if pool else [])
    requested = frozenset(data.draw(st.lists(st.sampled_from(pool), unique=True)) if pool else [])
    confirmed = frozenset(ip for ip in requested if ip not in assigned and data.draw(st.booleans()))
    cooling = frozenset(data.draw(st.lists(st.sampled_from(pool), unique=True)) if pool else [])
    usage = PoolUsage(assigned, cooling, requested, confirmed)
    plan = plan_node(s, enis, usage)

    total_enis = len(enis) + sum(isinstance(a, AddEni) for a in plan.actions)
    assert total_enis <= s.limits.max_enis
    for e in enis:
        added = sum(a.count for a in plan.actions if isinstance(a, AssignIps) and a.eni_id == e.eni_id)
        assert e.used_slots + added <= slots
    for a in plan.actions:
        if isinstance(a, AddEni):
            assert 0 < a.ip_count <= slots
        if isinstance(a, UnassignIps):
            assert set(a.ips) <= confirmed and not set(a.ips) & assigned
        if isinstance(a, RequestRelease):
            assert not set(a.ips) & (assigned | cooling | requested)
    if mode is Mode.FULL:
        assert not any(isinstance(a, (RequestRelease, UnassignIps)) for a in plan.actions)


@settings(max_examples=200, deadline=None)
@given(mode=st.sampled_from([Mode.WARM, Mode.PREFIX]), n_prefixes=st.integers(1, 4),
       n_ips=st.integers(0, 9), warm=st.integers(0, 3), data=st.data())
def test_plans_release_only_what_was_requested_and_confirmed_and_unassigned(
    mode: Mode, n_prefixes: int, n_ips: int, warm: int, data: st.DataObject
) -> None:
    # Every set drawn independently: release-ok may hold IPs never (or no longer)
    # requested, and assigned ones, as after a lost write or a stale agent report.
    prefixes = tuple(pfx(i) for i in range(n_prefixes)) if mode is Mode.PREFIX else ()
    pool_eni = eni(0, 0 if prefixes else n_ips, prefixes=prefixes)
    pool = [ip for p in prefixes for ip in p] or list(pool_eni.ips)

    def subset() -> frozenset[IPv4]:
        if not pool:
            return frozenset()
        whole = data.draw(st.lists(st.sampled_from(prefixes), unique=True)) if prefixes else []
        some = data.draw(st.lists(st.sampled_from(pool), unique=True))
        return frozenset(some) | {ip for p in whole for ip in p}

    usage = PoolUsage(assigned=subset(), cooling=subset(), release_requested=subset(),
                      release_confirmed=subset())
    targets = Targets(warm_prefix_target=warm) if prefixes else Targets(warm_ip_target=warm)
    plan = plan_node(spec("m5.large", mode, targets), [pool_eni], usage)
    releasable = (usage.release_requested & usage.release_confirmed) - usage.assigned
    for a in plan.actions:
        if isinstance(a, UnassignIps):
            assert set(a.ips) <= releasable & set(pool_eni.ips)
        if isinstance(a, UnassignPrefixes):
            assert all(set(p) <= releasable for p in a.prefixes)
