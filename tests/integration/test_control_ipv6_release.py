"""A node that no longer wants IPv6 gives its /80 back through the agent: the prefix's
CIDR into release-req, UnassignIpv6Addresses only once the agent put the same string
into release-ok, and never while a pod holds an address of it (real Redis, the EC2 and
Kubernetes emulators over HTTP)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from tests.integration.control_support import agent_confirms_release, context_for, join, vpcnet_enis
from vpcnet.control.context import ControlContext
from vpcnet.control.provision import provision_node
from vpcnet.control.warmpool import warm_pool_scan
from vpcnet.domain import Assignment
from vpcnet.settings import Settings
from vpcnet.tasknames import PROVISION_NODE
from vpcnet.wellknown import IP_FAMILY_ANNOTATION
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator


@pytest.fixture
def ctx(control_settings: Settings) -> Iterator[ControlContext]:
    yield context_for(control_settings)


def primary_prefixes(ec2: Ec2Emulator, iid: str) -> list[str]:
    return list(next(e for e in vpcnet_enis(ec2, iid) if e["device_index"] == 0)["ipv6_prefixes"])


def members(ctx: ControlContext, key: str) -> set[str]:
    return {x.decode() for x in ctx.state.redis.smembers(key)}


def dual_node_turned_ipv4(ctx: ControlContext, ec2: Ec2Emulator, world: World,
                          kube: KubeEmulator) -> tuple[str, str]:
    iid = join(ec2, kube, world.subnet_ids[0], world.azs[0], "n1", "m5.large",
               annotations={IP_FAMILY_ANNOTATION: "dual"})
    provision_node(ctx, "n1", iid, world.azs[0])
    [prefix] = primary_prefixes(ec2, iid)
    ctx.kube.set_annotations("n1", {IP_FAMILY_ANNOTATION: "ipv4"})
    return iid, prefix


def test_the_80_goes_back_only_after_the_agent_confirms_it(
    ctx: ControlContext, ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    iid, prefix = dual_node_turned_ipv4(ctx, ec2_emulator, ec2_world, kube_emulator)
    k = ctx.state.node_keys("n1")
    provision_node(ctx, "n1", iid, ec2_world.azs[0])
    assert members(ctx, k.release_req) == {prefix}  # asked back, by its CIDR
    st = ctx.state.read_node("n1")
    assert st is not None and st.record.ip_family == "ipv4"
    # Without the agent's word nothing is unassigned, however many passes run.
    provision_node(ctx, "n1", iid, ec2_world.azs[0])
    assert primary_prefixes(ec2_emulator, iid) == [prefix]
    assert ctx.recorder.node_calls("n1").get("UnassignIpv6Addresses") is None

    assert agent_confirms_release(ctx, "n1") == {prefix}
    # The warm-pool scan sees the confirmed /80 and sends the pass (even in full mode).
    assert [f.task for f in warm_pool_scan(ctx) if f.args[0] == "n1"] == [PROVISION_NODE]
    provision_node(ctx, "n1", iid, ec2_world.azs[0])
    assert primary_prefixes(ec2_emulator, iid) == []
    assert ctx.recorder.node_calls("n1")["UnassignIpv6Addresses"] == 1
    assert members(ctx, k.release_req) == set() and members(ctx, k.release_ok) == set()
    st = ctx.state.read_node("n1")
    assert st is not None and all(r.ipv6_prefixes == () for r in st.enis)


def test_an_80_a_pod_still_uses_is_never_unassigned(
    ctx: ControlContext, ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    iid, prefix = dual_node_turned_ipv4(ctx, ec2_emulator, ec2_world, kube_emulator)
    k = ctx.state.node_keys("n1")
    pod = ipaddress.IPv6Network(prefix).network_address + 1
    ctx.state.redis.hset(k.assigned, str(pod), Assignment(pod, "c1", "eth0", "default", "p1").to_json())
    provision_node(ctx, "n1", iid, ec2_world.azs[0])
    assert members(ctx, k.release_req) == set()  # not even asked while in use
    ctx.state.redis.sadd(k.release_req, prefix)  # a wrong agent, or a race: both sets say go
    ctx.state.redis.sadd(k.release_ok, prefix)
    provision_node(ctx, "n1", iid, ec2_world.azs[0])
    assert primary_prefixes(ec2_emulator, iid) == [prefix]
    assert ctx.recorder.node_calls("n1").get("UnassignIpv6Addresses") is None
