"""IPv6 joins: provision_node in-process against real Redis and the EC2/Kubernetes
emulators over HTTP (boto3). A dual node gets one /80 on its primary ENI in one
AssignIpv6Addresses, written to Redis with its family; an ipv6 node makes no IPv4
secondary calls; a node wanting IPv6 in a subnet without it fails with a ConfigError
and makes no call."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from tests.integration.control_support import context_for, join, vpcnet_enis
from tests.integration.test_control_errors import assert_nothing_created, assert_surfaced
from vpcnet.control.context import ControlContext
from vpcnet.control.provision import provision_node
from vpcnet.domain import IpFamily, Mode, NodePhase
from vpcnet.errors import ConfigError
from vpcnet.limits import bundled_limits
from vpcnet.plan import EniConfig, NodeSpec, min_join_calls
from vpcnet.settings import Settings
from vpcnet.wellknown import IP_FAMILY_ANNOTATION
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator


@pytest.fixture
def ctx(control_settings: Settings) -> Iterator[ControlContext]:
    yield context_for(control_settings)


def bound(ctx: ControlContext, family: IpFamily, iid: str) -> dict[str, int]:
    lim = bundled_limits("m5.large")
    assert lim is not None
    return min_join_calls(NodeSpec(ctx.cluster, "n1", iid, lim, Mode.FULL, EniConfig("subnet-x", ()),
                                   ip_family=family))


def test_a_dual_node_gets_one_80_on_its_primary_eni(
    ctx: ControlContext, ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], ec2_world.azs[0], "n1", "m5.large",
               annotations={IP_FAMILY_ANNOTATION: "dual"})
    out = provision_node(ctx, "n1", iid, ec2_world.azs[0])
    assert out.phase == NodePhase.PROVISIONED and out.written
    calls = ctx.recorder.node_calls("n1")
    assert calls.get("AssignIpv6Addresses") == 1 and calls == out.plan_calls == bound(ctx, IpFamily.DUAL, iid)
    enis = vpcnet_enis(ec2_emulator, iid)
    primary = next(e for e in enis if e["device_index"] == 0)
    assert len(primary["ipv6_prefixes"]) == 1
    assert all(e["ipv6_prefixes"] == [] for e in enis if e["device_index"] != 0)
    assert all(len(e["secondary_ips"]) == 9 for e in enis)  # IPv4 exactly as an ipv4 node
    prefix = ipaddress.IPv6Network(primary["ipv6_prefixes"][0])
    subnet6 = ipaddress.IPv6Network(ec2_world.subnet_ipv6_cidrs[0])
    assert prefix.prefixlen == 80 and prefix.subnet_of(subnet6)

    st = ctx.state.read_node("n1")
    assert st is not None and st.record.ip_family == "dual"
    by_id = {r.eni_id: r for r in st.enis}
    assert by_id[primary["eni_id"]].ipv6_prefixes == (prefix,)
    assert all(r.subnet_ipv6_cidr == subnet6 for r in st.enis)
    # Converged: a second pass calls nothing and writes nothing.
    again = provision_node(ctx, "n1", iid, ec2_world.azs[0])
    assert not again.written and ctx.recorder.node_calls("n1").get("AssignIpv6Addresses") == 1


def test_an_ipv6_node_makes_no_ipv4_secondary_calls(
    ctx: ControlContext, ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], ec2_world.azs[0], "n1", "m5.large",
               annotations={IP_FAMILY_ANNOTATION: "ipv6"})
    out = provision_node(ctx, "n1", iid, ec2_world.azs[0])
    assert out.phase == NodePhase.PROVISIONED
    calls = ctx.recorder.node_calls("n1")
    assert calls == {"DescribeInstances": 1, "AssignIpv6Addresses": 1} == bound(ctx, IpFamily.IPV6, iid)
    enis = vpcnet_enis(ec2_emulator, iid)
    assert len(enis) == 1 and enis[0]["secondary_ips"] == [] and len(enis[0]["ipv6_prefixes"]) == 1
    st = ctx.state.read_node("n1")
    assert st is not None and st.record.ip_family == "ipv6" and st.record.no_growth == ""


def test_the_cluster_setting_gives_the_family_without_an_annotation(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator,
) -> None:
    ctx = context_for(control_settings.with_(ip_family=IpFamily.DUAL))
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], ec2_world.azs[0], "n1", "m5.large")
    provision_node(ctx, "n1", iid, ec2_world.azs[0])
    st = ctx.state.read_node("n1")
    assert st is not None and st.record.ip_family == "dual"
    assert any(r.ipv6_prefixes for r in st.enis if r.is_primary)


@pytest.mark.parametrize("family", ["ipv6", "dual"])
def test_a_subnet_without_ipv6_fails_the_node_before_any_call(
    ctx: ControlContext, control_settings: Settings, ec2_emulator: Ec2Emulator,
    kube_emulator: KubeEmulator, family: str,
) -> None:
    world = ec2_emulator.bootstrap_vpc(cidr="10.9.0.0/16", subnets=("10.9.0.0/20",),
                                       azs=("us-east-1a",), ipv4_only_subnets=("10.9.0.0/20",))
    subnet = world.subnet_ids[0]
    iid = join(ec2_emulator, kube_emulator, subnet, world.azs[0], "n1", "m5.large",
               annotations={IP_FAMILY_ANNOTATION: family})
    with pytest.raises(ConfigError, match=f"subnet {subnet} has no IPv6 CIDR"):
        provision_node(ctx, "n1", iid, world.azs[0])
    assert ctx.recorder.node_calls("n1") == {"DescribeInstances": 1}  # no mutation at all
    assert_surfaced(ctx, control_settings, "n1", f"subnet {subnet} has no IPv6 CIDR")
    assert_nothing_created(ec2_emulator, ctx, iid)
    assert vpcnet_enis(ec2_emulator, iid)[0]["ipv6_prefixes"] == []
