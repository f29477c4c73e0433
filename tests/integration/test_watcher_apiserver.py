"""The watcher and real Celery workers on the real kube-apiserver (etcd + kube-apiserver
v1.37.2, Node,RBAC), each process authenticating as its own ServiceAccount of
manifests/ (vpcnet_sim.embedded.kubeaccess): list + watch of nodes, the not-ready taint's
life from join to ready, Lease election across two ``vpcnet watcher`` processes with a
takeover of a killed leader, and the relist after a real 410 Gone.

tests/integration/test_watcher_{nodes,replicas,workers}.py are the emulator's versions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.fixtures.celery import BROKER_DB, CeleryProcs, settings_env, wait_until
from tests.fixtures.redis import RedisServer
from tests.integration.control_support import agent_ready, context_for, vpcnet_enis
from vpcnet.control.context import ControlContext
from vpcnet.domain import NodePhase
from vpcnet.errors import KubePermanentError, NotFoundError
from vpcnet.kube.client import KubeClient
from vpcnet.kube.types import Lease
from vpcnet.settings import Settings
from vpcnet.watcher.loop import Watcher
from vpcnet.wellknown import INSTANCE_ID_LABEL, NOT_READY_TAINT
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.embedded.kubeaccess import deploy_access
from vpcnet_sim.embedded.kubeapi import KubeApiServer

Spawn = Callable[[], subprocess.Popen[bytes]]


@dataclass(frozen=True)
class ControlPlane:
    server: KubeApiServer
    config: dict[str, str]  # the manifests' ConfigMap
    kubeconfigs: dict[str, Path]  # component -> its ServiceAccount's kubeconfig; "admin"


@pytest.fixture(scope="module")
def control_plane(controlplane_built: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("watcher-apiserver")
    server = KubeApiServer(workdir / "controlplane", binaries=controlplane_built)
    endpoint = server.start()
    try:
        deployed = deploy_access(endpoint)
        kubeconfigs = {
            component: endpoint.write_kubeconfig(workdir / f"{component}.kubeconfig", token)
            for component, token in deployed.tokens.items()
        }
        kubeconfigs["admin"] = endpoint.write_kubeconfig(workdir / "admin.kubeconfig")
        yield ControlPlane(server, deployed.config, kubeconfigs)
    finally:
        server.stop()


@pytest.fixture
def settings(
    control_plane: ControlPlane,
    redis_server: RedisServer,
    cluster_name: str,
    broker_db: Any,
    ec2_emulator: Ec2Emulator,
) -> Settings:
    """The workers' settings; ``as_component`` swaps in another identity."""
    cfg = control_plane.config
    return Settings(
        cluster_name=cluster_name,
        redis_url=redis_server.url,
        broker_url=f"redis://127.0.0.1:{redis_server.port}/{BROKER_DB}",
        ec2_endpoint_url=ec2_emulator.endpoint_url,
        kubeconfig=str(control_plane.kubeconfigs["workers"]),
        lease_name=cfg["VPCNET_LEASE_NAME"],
        lease_namespace=cfg["VPCNET_LEASE_NAMESPACE"],
        event_namespace=cfg["VPCNET_EVENT_NAMESPACE"],
        lease_duration_seconds=3.0,
        rate_limit_share=0.95,
        broker_visibility_timeout_seconds=20,
        task_time_limit_seconds=15,
        worker_concurrency=16,
    )


def as_component(control_plane: ControlPlane, settings: Settings, component: str) -> Settings:
    return replace(settings, kubeconfig=str(control_plane.kubeconfigs[component]))


@pytest.fixture
def admin(control_plane: ControlPlane, settings: Settings) -> Iterator[KubeClient]:
    """The test's own view (not any component's identity)."""
    client = KubeClient.from_settings(as_component(control_plane, settings, "admin"))
    yield client
    client.close()


@pytest.fixture
def ctx(control_plane: ControlPlane, settings: Settings) -> ControlContext:
    return context_for(as_component(control_plane, settings, "admin"))


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[CeleryProcs]:
    procs = CeleryProcs(settings, tmp_path)  # authenticates as vpcnet-workers
    procs.start_worker("w1")
    try:
        yield procs
    finally:
        procs.stop_all()


@pytest.fixture
def nodes(control_plane: ControlPlane, admin: KubeClient) -> Iterator[list[str]]:
    """Names of the Nodes a test registers; deleted after it (the apiserver is shared)."""
    names: list[str] = []
    yield names
    for name in names:
        try:
            admin._json("DELETE", f"/api/v1/nodes/{name}")
        except NotFoundError:
            pass
    lease_ns = control_plane.config["VPCNET_LEASE_NAMESPACE"]
    lease_name = control_plane.config["VPCNET_LEASE_NAME"]
    try:
        admin._json("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/{lease_ns}/leases/{lease_name}")
    except NotFoundError:
        pass


@pytest.fixture
def spawn(control_plane: ControlPlane, settings: Settings, tmp_path: Path) -> Iterator[Spawn]:
    """``vpcnet watcher`` processes authenticating as vpcnet-watcher."""
    procs: list[subprocess.Popen[bytes]] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPCNET_")}
    env.update(settings_env(as_component(control_plane, settings, "watcher")))

    def start() -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"watcher{len(procs)}.log", "wb")  # the child keeps its copy
        proc = subprocess.Popen(
            [sys.executable, "-m", "vpcnet.cli.main", "watcher"], env=env, stdout=log, stderr=log
        )
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def join(
    control_plane: ControlPlane, ec2: Ec2Emulator, world: World, nodes: list[str], index: int
) -> tuple[str, str]:
    """An instance and its Node, as the cloud and kubelet make them."""
    name = f"ip-{index}-{uuid.uuid4().hex[:6]}"
    iid = ec2.run_instance(instance_type="m5.large", subnet_id=world.subnet_ids[0], name=name)
    nodes.append(name)
    control_plane.server.add_node(
        name, provider_id=f"aws:///{world.azs[0]}/{iid}", instance_type="m5.large"
    )
    return name, iid


def phase(ctx: ControlContext, node: str) -> NodePhase | None:
    st = ctx.state.read_node(node)
    return st.phase if st is not None else None


def holder_pid(lease: Lease | None) -> int | None:
    if lease is None or not lease.spec.holder_identity:
        return None
    return int(lease.spec.holder_identity.rsplit("_", 2)[1])


def test_two_watchers_and_a_worker_provision_ready_release_and_fail_over(
    control_plane: ControlPlane,
    settings: Settings,
    admin: KubeClient,
    ctx: ControlContext,
    ec2_emulator: Ec2Emulator,
    ec2_world: World,
    worker: CeleryProcs,
    spawn: Spawn,
    nodes: list[str],
) -> None:
    a, b = spawn(), spawn()

    def lease() -> Lease | None:
        return admin.get_lease(settings.lease_namespace, settings.lease_name)

    pid = wait_until(lambda: holder_pid(lease()), 60, "a leader")
    leader, standby = (a, b) if pid == a.pid else (b, a)

    first, iid = join(control_plane, ec2_emulator, ec2_world, nodes, 1)
    wait_until(lambda: phase(ctx, first) is NodePhase.PROVISIONED, 60, f"{first} provisioned")
    node = admin.read_node(first)
    assert node is not None and node.has_taint(NOT_READY_TAINT, "NoSchedule")
    assert node.labels[INSTANCE_ID_LABEL] == iid
    assert len(vpcnet_enis(ec2_emulator, iid)) == 3  # m5.large in full mode
    agent_ready(ctx, first)
    wait_until(lambda: phase(ctx, first) is NodePhase.READY, 60, f"{first} ready")
    wait_until(
        lambda: (n := admin.read_node(first)) is not None and not n.has_taint(NOT_READY_TAINT),
        60, "the not-ready taint lifted",
    )
    events = admin.list_node_events(first)
    assert events and {e.component for e in events} <= {"vpcnet-watcher", "vpcnet-worker"}

    leader.kill()
    leader.wait(10)
    wait_until(lambda: holder_pid(lease()) == standby.pid, 60, "the standby to take over")
    second, _ = join(control_plane, ec2_emulator, ec2_world, nodes, 2)
    wait_until(lambda: phase(ctx, second) is NodePhase.PROVISIONED, 60, f"{second} provisioned")

    admin._json("DELETE", f"/api/v1/nodes/{first}")
    wait_until(lambda: ctx.state.read_node(first) is None, 60, f"{first}'s state released")
    assert len(vpcnet_enis(ec2_emulator, iid)) == 1  # only the primary ENI is left


def relists(cause: str) -> float:
    return REGISTRY.get_sample_value("vpcnet_watcher_relists_total", {"cause": cause}) or 0.0


def test_the_watcher_relists_on_a_real_410_and_keeps_provisioning(
    control_plane: ControlPlane,
    settings: Settings,
    ctx: ControlContext,
    ec2_emulator: Ec2Emulator,
    ec2_world: World,
    worker: CeleryProcs,
    nodes: list[str],
) -> None:
    watcher = Watcher.from_settings(as_component(control_plane, settings, "watcher"))
    watcher.start()
    try:
        wait_until(lambda: watcher.stats.resyncs >= 1 or None, 60, "the watcher leading")
        before, expired = watcher.stats.lists, relists("expired")
        first, _ = join(control_plane, ec2_emulator, ec2_world, nodes, 1)
        wait_until(lambda: phase(ctx, first) is NodePhase.PROVISIONED, 60, f"{first} provisioned")

        # The apiserver's watch cache starts over: the watch ends, its resume is 410.
        control_plane.server.expire_watch_cache()
        wait_until(lambda: relists("expired") > expired or None, 60, "a relist on 410")
        assert watcher.stats.lists > before

        second, _ = join(control_plane, ec2_emulator, ec2_world, nodes, 2)
        wait_until(lambda: phase(ctx, second) is NodePhase.PROVISIONED, 60, f"{second} provisioned")
    finally:
        watcher.stop()
        watcher.close()


def test_a_watcher_process_is_refused_what_its_role_does_not_grant(
    control_plane: ControlPlane, settings: Settings
) -> None:
    """The identities are real: the watcher's token cannot read Secrets (403)."""
    kube = KubeClient.from_settings(as_component(control_plane, settings, "watcher"))
    try:
        with pytest.raises(KubePermanentError) as err:
            kube._json("GET", "/api/v1/namespaces/vpcnet-system/secrets")
        assert err.value.status == 403
    finally:
        kube.close()
