"""Audit, reconcile and GC over /80s, against real Redis and the EC2/Kubernetes
emulators over HTTP: the audit reads both families from the ``assigned`` hash and finds
what the old audit could not; reconcile repairs Redis' /80s from EC2; GC of a leaked
ENI frees its /80s."""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from collections.abc import Iterator

import pytest

from tests.integration.control_support import context_for, join, leave_eni, vpcnet_enis
from vpcnet.control.context import ControlContext
from vpcnet.control.gc import gc_enis
from vpcnet.control.provision import provision_node
from vpcnet.control.reconcile import reconcile_scan
from vpcnet.domain import Assignment
from vpcnet.ops.collect import run_audit
from vpcnet.settings import Settings
from vpcnet.tasknames import PROVISION_NODE
from vpcnet.wellknown import IP_FAMILY_ANNOTATION
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator


@pytest.fixture
def ctx(control_settings: Settings) -> Iterator[ControlContext]:
    yield context_for(control_settings)


def dual_node(ctx: ControlContext, ec2: Ec2Emulator, world: World, kube: KubeEmulator) -> tuple[str, ipaddress.IPv6Network]:
    iid = join(ec2, kube, world.subnet_ids[0], world.azs[0], "n1", "m5.large",
               annotations={IP_FAMILY_ANNOTATION: "dual"})
    provision_node(ctx, "n1", iid, world.azs[0])
    primary = next(e for e in vpcnet_enis(ec2, iid) if e["device_index"] == 0)
    return iid, ipaddress.IPv6Network(primary["ipv6_prefixes"][0])


def kinds(settings: Settings) -> list[str]:
    return [v.kind for v in run_audit(settings) if v.kind.startswith("ipv6")]


def assign(ctx: ControlContext, ip: ipaddress.IPv6Address, cid: str) -> None:
    k = ctx.state.node_keys("n1")
    ctx.state.redis.hset(k.assigned, str(ip), Assignment(ip, cid, "eth0", "default", cid).to_json())


def test_the_audit_checks_ipv6_pods_against_the_nodes_80(
    ctx: ControlContext, control_settings: Settings, ec2_emulator: Ec2Emulator,
    ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    _, prefix = dual_node(ctx, ec2_emulator, ec2_world, kube_emulator)
    assign(ctx, prefix.network_address + 1, "c1")  # a pod of the /80: fine
    assert kinds(control_settings) == []
    outside = ipaddress.IPv6Address(int(prefix.network_address) + (1 << 48) + 1)  # the next /80
    assign(ctx, outside, "c2")
    assert kinds(control_settings) == ["ipv6-not-in-node-prefix"]


def test_the_audit_finds_an_80_redis_names_but_ec2_does_not_give_and_reconcile_repairs_it(
    ctx: ControlContext, control_settings: Settings, ec2_emulator: Ec2Emulator,
    ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    iid, prefix = dual_node(ctx, ec2_emulator, ec2_world, kube_emulator)
    st = ctx.state.read_node("n1")
    assert st is not None
    wrong = ipaddress.IPv6Network((int(prefix.network_address) + (1 << 48), 80))
    k = ctx.state.node_keys("n1")
    for r in st.enis:
        if r.is_primary:  # Redis drifted: it names a /80 EC2 does not give the ENI
            ctx.state.redis.hset(k.enis, r.eni_id, dataclasses.replace(r, ipv6_prefixes=(wrong,)).to_json())
    assert sorted(kinds(control_settings)) == ["ipv6-prefix-missing-in-ec2", "ipv6-prefix-missing-in-redis"]
    followups = reconcile_scan(ctx)
    assert [(f.task, f.why) for f in followups if f.args[0] == "n1"] == [(PROVISION_NODE, "Redis differs from EC2")]
    provision_node(ctx, "n1", iid, ec2_world.azs[0])
    st = ctx.state.read_node("n1")
    assert st is not None and [r.ipv6_prefixes for r in st.enis if r.is_primary] == [(prefix,)]
    assert kinds(control_settings) == []


def test_the_audit_finds_an_80_leaked_on_a_node_wanting_no_ipv6(
    ctx: ControlContext, control_settings: Settings, ec2_emulator: Ec2Emulator,
    ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    dual_node(ctx, ec2_emulator, ec2_world, kube_emulator)
    # The node's record says ipv4 but nothing asked the /80 back (a lost release-req).
    ctx.state.set_fields("n1", {"ip_family": "ipv4"})
    assert kinds(control_settings) == ["ipv6-prefix-leaked"]


def test_gc_of_a_leaked_eni_frees_its_80s(
    ctx: ControlContext, control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    eni = leave_eni(ec2_emulator, ec2_world.subnet_ids[0], ctx.cluster,
                    control_settings.eni_gc_grace_seconds + 60, "n9")
    got = ec2_emulator.client().assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6PrefixCount=1)
    [prefix] = got["AssignedIpv6Prefixes"]
    report = gc_enis(ctx, now=time.time())
    assert report.deleted == (eni,)
    assert report.released_ipv6_prefixes == (ipaddress.IPv6Network(prefix),)
