"""An ipv6 node's pod capacity follows its instance type's vCPUs: EC2's
DescribeInstanceTypes (the emulator, boto3 over HTTP) gives them, the Redis limits cache
keeps them, and ``vpcnet status --json`` (the real command) reports 250 for a 32-vCPU
type and 110 for a 16-vCPU one."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.control_support import context_for, join
from tests.integration.test_control_ipv6_status import cli
from vpcnet.control.provision import provision_node
from vpcnet.settings import Settings
from vpcnet.wellknown import IP_FAMILY_ANNOTATION
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator


def test_ec2_describes_vcpus_and_the_cache_keeps_them(
    control_settings: Settings, ec2_emulator: Ec2Emulator,
) -> None:
    ctx = context_for(control_settings)
    described = ctx.ec2.describe_instance_type("m5.8xlarge")
    assert described is not None and described.vcpus == 32
    ctx.state.store_limits(described)
    cached = ctx.state.cached_limits("m5.8xlarge")
    assert cached is not None and cached.vcpus == 32


def test_status_reports_250_pods_for_an_ipv6_node_of_32_vcpus(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator,
) -> None:
    ctx = context_for(control_settings)
    for name, itype in (("big6", "m5.8xlarge"), ("small6", "m5.4xlarge")):
        iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], ec2_world.azs[0], name,
                   itype, annotations={IP_FAMILY_ANNOTATION: "ipv6"})
        provision_node(ctx, name, iid, ec2_world.azs[0])
    status: dict[str, Any] = json.loads(cli(control_settings, "status", "--json"))
    rows = {n["name"]: n for n in status["node_list"]}
    assert rows["big6"]["ip_family"] == "ipv6" and rows["big6"]["max_pods"] == 250
    assert rows["small6"]["ip_family"] == "ipv6" and rows["small6"]["max_pods"] == 110
