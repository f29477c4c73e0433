"""Nodes joining through real Celery worker processes (issue 3, "done when")."""

from __future__ import annotations

from collections import Counter

from celery import Celery

from tests.fixtures.celery import CeleryProcs
from tests.integration.control_support import (
    all_cluster_enis,
    assert_redis_equals_ec2,
    assert_tagged,
    context_for,
    join,
    vpcnet_enis,
)
from vpcnet.domain import Mode, NodePhase
from vpcnet.limits import bundled_limits
from vpcnet.plan import EniConfig, NodeSpec, min_join_calls
from vpcnet.settings import Settings
from vpcnet.tasknames import PROVISION_NODE
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator

MIXED = ("t3.nano", "m5.large", "m5.xlarge", "c5.18xlarge")


def launch(ec2: Ec2Emulator, kube: KubeEmulator, world: World, count: int,
           types: tuple[str, ...] = MIXED) -> dict[str, tuple[str, str, str]]:
    nodes = {}
    for i in range(count):
        t, s = types[i % len(types)], i % len(world.subnet_ids)
        name = f"node-{i:03d}"
        nodes[name] = (join(ec2, kube, world.subnet_ids[s], world.azs[s], name, t), world.azs[s], t)
    return nodes


def minimum(cluster: str, node: str, iid: str, itype: str) -> dict[str, int]:
    lim = bundled_limits(itype)
    assert lim is not None
    return min_join_calls(NodeSpec(cluster, node, iid, lim, Mode.FULL, EniConfig("subnet-x", ())))


def test_twenty_mixed_nodes_join_in_full_mode(
    control_settings: Settings, celery_procs: CeleryProcs, task_client: Celery,
    ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    nodes = launch(ec2_emulator, kube_emulator, ec2_world, 20)
    celery_procs.start_worker("w1")
    ec2_emulator.reset_counters()
    pending = [task_client.send_task(PROVISION_NODE, args=[n, iid, az])
               for n, (iid, az, _) in nodes.items()]
    for r in pending:
        r.get(timeout=180)  # a failed task raises here

    ctx = context_for(control_settings)
    expected_total: Counter[str] = Counter()
    for name, (iid, _, itype) in nodes.items():
        lim = bundled_limits(itype)
        assert lim is not None
        st = ctx.state.read_node(name)
        assert st is not None and st.phase is NodePhase.PROVISIONED
        enis = vpcnet_enis(ec2_emulator, iid)
        assert len(enis) == lim.max_enis, name
        assert all(len(e["secondary_ips"]) == lim.ipv4_per_eni - 1 for e in enis), name
        assert all(e["status"] in ("attaching", "attached") for e in enis)
        for e in enis:
            if e["device_index"] != 0:
                assert_tagged(e, ctx.cluster, name, iid)
                assert e["delete_on_termination"]
        assert_redis_equals_ec2(st, enis)
        want = minimum(ctx.cluster, name, iid, itype)
        assert ctx.recorder.node_calls(name) == want, name  # per action
        expected_total.update(want)

    counters = ec2_emulator.counters()
    assert counters["throttled"] == {}
    calls = Counter(counters["calls"])
    # cluster-wide cache fills: one DescribeInstanceTypes per type, one DescribeSubnets per subnet
    assert calls.pop("DescribeInstanceTypes") == len(MIXED)
    assert calls.pop("DescribeSubnets") == len(ec2_world.subnet_ids)
    assert calls == expected_total
    # no ENI beyond the attached ones
    attached = {e["eni_id"] for iid, _, _ in nodes.values() for e in vpcnet_enis(ec2_emulator, iid)}
    assert {e["eni_id"] for e in all_cluster_enis(ec2_emulator, ctx.cluster)} <= attached
    print("EC2 calls per action:", dict(sorted(expected_total.items())))
