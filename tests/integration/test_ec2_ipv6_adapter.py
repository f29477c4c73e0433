"""The boto3 adapter's IPv6: parsing Ipv6Prefixes/Ipv6Addresses, the subnet's /64 and
the type's IPv6 limit, and assign/unassign_ipv6_prefixes through the fence, the rate
limiter, attribution, stats and error mapping, against the emulator over HTTP."""

from __future__ import annotations

import ipaddress
import uuid

import pytest

from tests.integration.control_support import context_for
from tests.integration.ipv6_support import primary_eni
from vpcnet.aws.calls import attributed_to
from vpcnet.aws.fence import fenced_by
from vpcnet.control.context import ControlContext
from vpcnet.errors import Ec2PermanentError, LockHeld
from vpcnet.settings import Settings
from vpcnet.state.keys import ClusterKeys
from vpcnet_sim.ec2 import Ec2Emulator, World

ASSIGN6 = "AssignIpv6Addresses"
UNASSIGN6 = "UnassignIpv6Addresses"


@pytest.fixture
def ctx(control_settings: Settings) -> ControlContext:
    return context_for(control_settings)


@pytest.fixture
def v4_world(ec2_emulator: Ec2Emulator) -> World:
    ec2_emulator.set_config(ipv4_only_subnets=("10.0.64.0/19",))
    return ec2_emulator.bootstrap_vpc()


def test_views_carry_ipv6(ctx: ControlContext, ec2_emulator: Ec2Emulator, v4_world: World) -> None:
    raw = ec2_emulator.client()
    iid = ec2_emulator.run_instance("m5.large", v4_world.subnet_ids[0])
    eni_id = primary_eni(raw, iid)
    prefixes = raw.assign_ipv6_addresses(NetworkInterfaceId=eni_id, Ipv6PrefixCount=2)[
        "AssignedIpv6Prefixes"]
    inst = ctx.ec2.describe_instance(iid)
    assert inst is not None
    (eni,) = inst.enis
    assert eni.ipv6_prefixes == tuple(ipaddress.IPv6Network(p) for p in prefixes)
    (own,) = eni.ipv6_addresses
    assert own in ipaddress.IPv6Network(v4_world.subnet_ipv6_cidrs[0])
    assert eni.used_ipv6_slots == 3
    (described,) = ctx.ec2.describe_enis({"network-interface-id": [eni_id]})
    assert described.ipv6_prefixes == eni.ipv6_prefixes
    assert described.ipv6_addresses == eni.ipv6_addresses
    subnets = {s.subnet_id: s for s in ctx.ec2.describe_subnets(list(v4_world.subnet_ids))}
    assert subnets[v4_world.subnet_ids[0]].ipv6_cidr == ipaddress.IPv6Network(
        v4_world.subnet_ipv6_cidrs[0])
    assert subnets[v4_world.subnet_ids[2]].ipv6_cidr is None
    limits = ctx.ec2.describe_instance_type("t3.nano")
    assert limits is not None and limits.ipv6_per_eni == 2 and limits.ipv6_slots == 2
    v4_iid = ec2_emulator.run_instance("m5.large", v4_world.subnet_ids[2])
    v4_inst = ctx.ec2.describe_instance(v4_iid)
    assert v4_inst is not None
    assert v4_inst.enis[0].ipv6_addresses == () and v4_inst.enis[0].ipv6_prefixes == ()


def test_assign_and_unassign_ipv6_prefixes(
    ctx: ControlContext, ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    eni_id = primary_eni(ec2_emulator.client(),
                         ec2_emulator.run_instance("m5.large", ec2_world.subnet_ids[0]))
    lease = ctx.state.lease_lock("n1", 30.0)
    try:
        with fenced_by(lease), attributed_to("n1"):
            got = ctx.ec2.assign_ipv6_prefixes(eni_id, 2)
            assert len(got) == 2 and all(p.prefixlen == 80 for p in got)
            (eni,) = ctx.ec2.describe_enis({"network-interface-id": [eni_id]})
            assert eni.ipv6_prefixes == got
            ctx.ec2.unassign_ipv6_prefixes(eni_id, got[:1])
            (eni,) = ctx.ec2.describe_enis({"network-interface-id": [eni_id]})
            assert eni.ipv6_prefixes == got[1:]
    finally:
        lease.release()
    assert ctx.recorder.node_calls("n1")[ASSIGN6] == 1  # attributed to the node
    assert ctx.recorder.node_calls("n1")[UNASSIGN6] == 1
    totals = ctx.recorder.totals()
    assert totals["calls"][ASSIGN6] == 1 and totals["calls"][UNASSIGN6] == 1
    assert ec2_emulator.counters()["calls"][ASSIGN6] == 1
    # each went through the shared rate limiter: its bucket for the action is in Redis
    keys = ClusterKeys(ctx.cluster)
    assert ctx.state.redis.exists(keys.ratelimit(ASSIGN6), keys.ratelimit(UNASSIGN6)) == 2


def test_refusals_of_bad_configuration_are_permanent(
    ctx: ControlContext, ec2_emulator: Ec2Emulator, v4_world: World,
) -> None:
    raw = ec2_emulator.client()
    v4_eni = primary_eni(raw, ec2_emulator.run_instance("m5.large", v4_world.subnet_ids[2]))
    small = primary_eni(raw, ec2_emulator.run_instance("t3.nano", v4_world.subnet_ids[0]))
    lease = ctx.state.lease_lock("n1", 30.0)
    try:
        with fenced_by(lease):
            with pytest.raises(Ec2PermanentError) as no_cidr:
                ctx.ec2.assign_ipv6_prefixes(v4_eni, 1)
            assert no_cidr.value.code == "InvalidParameterValue"
            with pytest.raises(Ec2PermanentError) as limit:
                ctx.ec2.assign_ipv6_prefixes(small, 2)  # 2 per ENI, its own address is one
            assert limit.value.code == "PrivateIpAddressLimitExceeded"
            with pytest.raises(Ec2PermanentError) as not_held:
                ctx.ec2.unassign_ipv6_prefixes(small, [ipaddress.IPv6Network("2001:db8::/80")])
            assert not_held.value.code == "InvalidParameterValue"
    finally:
        lease.release()


def test_a_lost_lock_sends_no_ipv6_call(
    ctx: ControlContext, ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    eni_id = primary_eni(ec2_emulator.client(),
                         ec2_emulator.run_instance("m5.large", ec2_world.subnet_ids[0]))
    lease = ctx.state.lease_lock("n1", 30.0)
    ctx.state.redis.set(ctx.state.node_keys("n1").lock, uuid.uuid4().hex, px=60_000)  # stolen
    ec2_emulator.reset_counters()
    with fenced_by(lease):
        with pytest.raises(LockHeld):
            ctx.ec2.assign_ipv6_prefixes(eni_id, 1)
        with pytest.raises(LockHeld):
            ctx.ec2.unassign_ipv6_prefixes(eni_id, [ipaddress.IPv6Network("2001:db8::/80")])
    assert ec2_emulator.counters()["calls"] == {}
    with pytest.raises(Ec2PermanentError) as unfenced:  # and none outside any fence
        ctx.ec2.assign_ipv6_prefixes(eni_id, 1)
    assert unfenced.value.code == "VpcnetUnfenced"
    assert ec2_emulator.counters()["calls"] == {}
