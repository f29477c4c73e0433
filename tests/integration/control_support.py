"""Helpers shared by the control-plane integration tests (plain functions, no fixtures)."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from typing import Any

from vpcnet.control.context import ControlContext
from vpcnet.control.view import created_at, created_at_tag
from vpcnet.domain import Assignment, NodePhase
from vpcnet.settings import Settings
from vpcnet.state.control import NodeState
from vpcnet.state.records import AgentRecord
from vpcnet.wellknown import TAG_CLUSTER, TAG_CREATED_AT, TAG_INSTANCE, TAG_NODE
from vpcnet_sim.ec2 import Ec2Emulator
from vpcnet_sim.kube import KubeEmulator


def join(
    ec2: Ec2Emulator,
    kube: KubeEmulator,
    subnet_id: str,
    az: str,
    name: str,
    instance_type: str,
    annotations: Mapping[str, str] | None = None,
    provider_id: bool = True,
) -> str:
    """Launch an instance and register its Kubernetes node, as the cloud and kubelet do."""
    iid = ec2.run_instance(instance_type=instance_type, subnet_id=subnet_id, name=name)
    kube.add_node(name, provider_id=f"aws:///{az}/{iid}" if provider_id else None,
                  instance_type=instance_type, annotations=dict(annotations or {}))
    return iid


def vpcnet_enis(ec2: Ec2Emulator, iid: str) -> list[dict[str, Any]]:
    """The instance's ENIs as EC2 holds them (the console's view: not counted, not throttled)."""
    return list(ec2.instance_view(iid)["enis"])


def all_cluster_enis(ec2: Ec2Emulator, cluster: str) -> list[dict[str, Any]]:
    """Every ENI tagged for ``cluster``, attached or not (leak checks)."""
    out = []
    with ec2.lock:
        for eni in ec2.backend.enis.values():
            tags = dict(ec2.backend.tags.get(eni.id) or {})
            if tags.get(TAG_CLUSTER) == cluster:
                out.append({"eni_id": eni.id, "status": eni.status, "tags": tags})
    return out


def leave_eni(ec2: Ec2Emulator, subnet: str, cluster: str, age: float, node: str | None) -> str:
    """An ENI whose creator died before attaching it, created ``age`` seconds ago."""
    tags = {TAG_CLUSTER: cluster, TAG_CREATED_AT: created_at_tag(time.time() - age)}
    if node is not None:
        tags[TAG_NODE] = node
    return str(ec2.client().create_network_interface(
        SubnetId=subnet,
        TagSpecifications=[{"ResourceType": "network-interface",
                            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
    )["NetworkInterface"]["NetworkInterfaceId"])


def assert_tagged(eni: Mapping[str, Any], cluster: str, node: str, iid: str) -> None:
    tags = eni["tags"]
    assert tags[TAG_CLUSTER] == cluster and tags[TAG_NODE] == node and tags[TAG_INSTANCE] == iid
    born = created_at(tags)  # readable by the codec GC and the audit use
    assert born is not None and abs(time.time() - born) < 3600


def assert_redis_equals_ec2(st: NodeState, enis: list[dict[str, Any]]) -> None:
    """Redis' copy of the node's ENIs is exactly what EC2 holds."""
    redis_view = {
        r.eni_id: (r.device_index, r.mac, str(r.primary_ip), sorted(map(str, r.ips)),
                   sorted(map(str, r.prefixes)), str(r.subnet_cidr))
        for r in st.enis
    }
    ec2_view = {
        e["eni_id"]: (e["device_index"], e["mac"].lower(), e["primary_ip"],
                      sorted(e["secondary_ips"]), sorted(e["prefixes"]), e["subnet_cidr"])
        for e in enis
    }
    assert redis_view == ec2_view


def agent_takes(ctx: ControlContext, node: str, n: int) -> list[str]:
    """Simulate the agent handing ``n`` free pool IPs to pods (its ``assigned`` hash)."""
    st = ctx.state.read_node(node)
    assert st is not None
    usage = ctx.state.read_usage(node, ctx.settings.ip_cooldown_seconds)
    taken = {str(i) for i in usage.assigned | usage.release_requested}
    free = [str(ip) for r in st.enis for ip in r.pod_ips() if str(ip) not in taken][:n]
    assert len(free) == n, "pool too small for the test"
    k = ctx.state.node_keys(node)
    for i, ip in enumerate(free):
        a = Assignment(ipaddress.IPv4Address(ip), f"c{ip}", "eth0", "default", f"pod-{i}")
        ctx.state.redis.hset(k.assigned, ip, a.to_json())
    return free


def agent_returns(ctx: ControlContext, node: str, ips: list[str], freed_at: float) -> None:
    """Simulate pods going away: out of ``assigned``, into ``cooldown`` at ``freed_at``."""
    k = ctx.state.node_keys(node)
    for ip in ips:
        ctx.state.redis.hdel(k.assigned, ip)
        ctx.state.redis.zadd(k.cooldown, {ip: freed_at})


def agent_confirms_release(ctx: ControlContext, node: str) -> set[str]:
    """Simulate the agent: every requested IP it does not use goes to ``release-ok``."""
    k = ctx.state.node_keys(node)
    r = ctx.state.redis
    requested = {x.decode() for x in r.smembers(k.release_req)}
    used = {x.decode() for x in r.hkeys(k.assigned)}
    ok = requested - used
    if ok:
        r.sadd(k.release_ok, *ok)
    return ok


def agent_ready(ctx: ControlContext, node: str) -> None:
    """Simulate the agent reporting it programmed the node's current generation."""
    st = ctx.state.read_node(node)
    assert st is not None and st.phase in (NodePhase.PROVISIONED, NodePhase.READY)
    k = ctx.state.node_keys(node)
    v = st.version
    report = AgentRecord(ready=True, epoch=v.epoch, generation=v.generation, write_id=v.write_id)
    ctx.state.redis.hset(k.agent, mapping=report.to_redis())
    ctx.state.redis.publish(ctx.state.keys.agent_ready_channel, node)


def pool_counts(ctx: ControlContext, node: str) -> tuple[int, int]:
    """(pod IPs in the node's pool, of which free) from Redis."""
    st = ctx.state.read_node(node)
    assert st is not None
    usage = ctx.state.read_usage(node, ctx.settings.ip_cooldown_seconds)
    pool = {ip for r in st.enis for ip in r.pod_ips()}
    return len(pool), len(pool - usage.assigned - usage.cooling - usage.release_requested)


def context_for(settings: Settings) -> ControlContext:
    return ControlContext.from_settings(settings)
