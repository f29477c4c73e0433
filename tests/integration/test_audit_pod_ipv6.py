"""The audit's Kubernetes-side pod checks cover IPv6 (real Redis, the EC2 and Kubernetes
emulators over HTTP): a pod's IPv6 in ``status.podIPs`` (written through the API, as a
kubelet does) must be held by its node's agent, and no IPv6 may be on two pods."""

from __future__ import annotations

import ipaddress

from kubernetes import client

from tests.integration.control_support import context_for, join, vpcnet_enis
from vpcnet.control.context import ControlContext
from vpcnet.control.provision import provision_node
from vpcnet.domain import Assignment
from vpcnet.ops.collect import run_audit
from vpcnet.settings import Settings
from vpcnet.wellknown import IP_FAMILY_ANNOTATION
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator


def running(kube: KubeEmulator, name: str, ip6: ipaddress.IPv6Address) -> None:
    """An ipv6-only pod on n1 as its kubelet reports it: podIP and podIPs."""
    kube.add_pod(name, node_name="n1")
    core = client.CoreV1Api(kube.api_client())
    core.patch_namespaced_pod_status(name, "default", {"status": {
        "phase": "Running", "podIP": str(ip6), "podIPs": [{"ip": str(ip6)}]}})


def pod_violations(settings: Settings) -> list[tuple[str, str]]:
    return [(v.kind, v.subject) for v in run_audit(settings) if v.kind.startswith("pod-")]


def mirror(ctx: ControlContext, ip: ipaddress.IPv6Address, pod: str) -> None:
    k = ctx.state.node_keys("n1")
    ctx.state.redis.hset(k.assigned, str(ip), Assignment(ip, f"c-{pod}", "eth0", "default", pod).to_json())


def test_the_audit_checks_pods_ipv6_addresses(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator,
) -> None:
    ctx = context_for(control_settings)
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], ec2_world.azs[0], "n1",
               "m5.large", annotations={IP_FAMILY_ANNOTATION: "ipv6"})
    provision_node(ctx, "n1", iid, ec2_world.azs[0])
    primary = next(e for e in vpcnet_enis(ec2_emulator, iid) if e["device_index"] == 0)
    prefix = ipaddress.IPv6Network(primary["ipv6_prefixes"][0])
    held, stray = prefix.network_address + 1, prefix.network_address + 2

    running(kube_emulator, "a", held)
    mirror(ctx, held, "a")
    assert pod_violations(control_settings) == []

    running(kube_emulator, "b", stray)  # Kubernetes says b has it; the agent never gave it
    assert pod_violations(control_settings) == [("pod-ip-not-assigned", "default/b")]

    running(kube_emulator, "c", held)  # a's address on a second pod
    assert sorted(pod_violations(control_settings)) == [
        ("pod-ip-duplicate", str(held)), ("pod-ip-not-assigned", "default/b")]
