"""Worker kills and EC2 throttling during joins, through real Celery worker processes."""

from __future__ import annotations

import random
import time
from typing import Any

from celery import Celery

from tests.fixtures.celery import CeleryProcs, wait_until
from tests.integration.control_support import all_cluster_enis, context_for, vpcnet_enis
from tests.integration.test_control_join import launch
from vpcnet.aws.buckets import Bucket
from vpcnet.domain import NodePhase
from vpcnet.limits import bundled_limits
from vpcnet.settings import Settings
from vpcnet.tasknames import PROVISION_NODE
from vpcnet_sim.ec2 import Ec2Emulator, Ec2SimConfig, World
from vpcnet_sim.kube import KubeEmulator


def provisioned(ctx: Any, names: list[str]) -> bool:
    return all((st := ctx.state.read_node(n)) is not None and st.phase is NodePhase.PROVISIONED
               for n in names)


def assert_one_clean_run(ec2: Ec2Emulator, cluster: str, nodes: dict[str, tuple[str, str, str]]) -> None:
    """Each node has exactly its type's ENIs and IPs; no other ENI of the cluster exists."""
    expected = 0
    for name, (iid, _, itype) in nodes.items():
        lim = bundled_limits(itype)
        assert lim is not None
        enis = vpcnet_enis(ec2, iid)
        assert len(enis) == lim.max_enis, name
        assert sorted(e["device_index"] for e in enis) == list(range(lim.max_enis)), name
        assert all(len(e["secondary_ips"]) == lim.ipv4_per_eni - 1 for e in enis), name
        assert all(e["delete_on_termination"] for e in enis if e["device_index"]), name
        expected += lim.max_enis - 1
    tagged = all_cluster_enis(ec2, cluster)
    assert len(tagged) == expected  # no duplicate, no leak
    assert all(e["status"] == "in-use" for e in tagged)


def test_kill_9_of_workers_during_a_20_node_join(
    control_settings: Settings, celery_procs: CeleryProcs, task_client: Celery,
    ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    ec2_emulator.set_config(Ec2SimConfig.aws_like(seed=7))  # EC2-like latencies: kills land mid-pass
    nodes = launch(ec2_emulator, kube_emulator, ec2_world, 20)
    rng = random.Random(3)
    celery_procs.start_worker("w0")
    for n, (iid, az, _) in nodes.items():
        task_client.send_task(PROVISION_NODE, args=[n, iid, az])
    for i in range(3):
        time.sleep(rng.uniform(0.5, 3.0))
        celery_procs.kill(f"w{i}")
        celery_procs.start_worker(f"w{i + 1}")
    ctx = context_for(control_settings)
    wait_until(lambda: provisioned(ctx, list(nodes)), 240, "all nodes provisioned after the kills")
    assert_one_clean_run(ec2_emulator, ctx.cluster, nodes)


def test_hundred_nodes_with_throttling_converge_without_failed_tasks(
    control_settings: Settings, celery_procs: CeleryProcs, task_client: Celery,
    ec2_emulator: Ec2Emulator, ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    # EC2's buckets are smaller than the ones our limiter was told about (another client
    # in the account, say): real RequestLimitExceeded answers must happen and be absorbed.
    ec2_emulator.set_config(bucket_overrides={
        "AttachNetworkInterface": Bucket(10, 4.0),
        "CreateNetworkInterface": Bucket(10, 4.0),
    })
    nodes = launch(ec2_emulator, kube_emulator, ec2_world, 100, types=("t3.nano",))
    celery_procs.start_worker("w1", concurrency=32)
    pending = [task_client.send_task(PROVISION_NODE, args=[n, iid, az])
               for n, (iid, az, _) in nodes.items()]
    results = [r.get(timeout=300) for r in pending]  # a failed task raises here
    assert all(isinstance(r, dict) for r in results), results
    ctx = context_for(control_settings)
    assert provisioned(ctx, list(nodes))
    assert_one_clean_run(ec2_emulator, ctx.cluster, nodes)
    throttled = ec2_emulator.counters()["throttled"]
    assert sum(throttled.values()) > 0  # the scenario really throttled
    assert ctx.recorder.totals().get("throttled", {}) == throttled  # every one seen and counted
