"""The agent's node identity (issue 11), verified by the real TokenReview.

An agent Pod on node X (a Node and a Pod with spec.nodeName X: the apiserver binds the
token to them; no kubelet is needed) gets a projected ServiceAccount token for vpcnet's
audience. ``KubeClient.review_token`` must return node X as the apiserver states it, refuse
the token for any other audience, refuse it as node Y's, and refuse it once the pod is gone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client as k8s

from tests.fixtures.apiserver import ApiServer
from tests.integration.apiserver_support import NAMESPACE, apply_base, create_node, kube_client
from vpcnet.kube.client import KubeClient
from vpcnet.kube.tokenreview import TokenRejected
from vpcnet_sim.embedded.procs import wait_for

AUDIENCE = "vpcnet.io/agent"
AGENT_SA = "vpcnet-agent"
REVOCATION_WITHIN = 30.0  # seconds: the 10 s token cache plus a loaded machine's slack


@dataclass(frozen=True)
class AgentPod:
    name: str
    uid: str
    node: str


@pytest.fixture(scope="module")
def deployed(kube_apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> ApiServer:
    apply_base(kube_apiserver, tmp_path_factory.mktemp("tokenreview"))
    return kube_apiserver


@pytest.fixture
def reviewer(deployed: ApiServer) -> Iterator[KubeClient]:
    kube = kube_client(deployed, deployed.admin_token, "tokenreview-test")
    yield kube
    kube.close()


def start_agent_pod(server: ApiServer, node: str) -> AgentPod:
    name = f"vpcnet-agent-{uuid.uuid4().hex[:8]}"
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "nodeName": node,
            "serviceAccountName": AGENT_SA,
            "automountServiceAccountToken": False,
            "containers": [{"name": "agent", "image": "vpcnet:test"}],
        },
    }
    with server.api_client() as api:
        pod = k8s.CoreV1Api(api).create_namespaced_pod(NAMESPACE, body)
    return AgentPod(name=name, uid=str(pod.metadata.uid), node=node)


def delete_pod(server: ApiServer, pod: AgentPod) -> None:
    with server.api_client() as api:
        # grace 0: no kubelet runs to confirm a graceful deletion
        k8s.CoreV1Api(api).delete_namespaced_pod(pod.name, NAMESPACE, grace_period_seconds=0)


@pytest.fixture
def nodes(deployed: ApiServer) -> Iterator[tuple[str, str]]:
    x, y = create_node(deployed, "node-x"), create_node(deployed, "node-y")
    yield x, y
    with deployed.api_client() as api:
        for name in (x, y):
            k8s.CoreV1Api(api).delete_node(name)


@pytest.fixture
def agent_on_x(deployed: ApiServer, nodes: tuple[str, str]) -> Iterator[AgentPod]:
    pod = start_agent_pod(deployed, nodes[0])
    yield pod
    try:
        delete_pod(deployed, pod)
    except k8s.ApiException as e:
        if e.status != 404:  # a test may have deleted it already
            raise


def agent_token(server: ApiServer, pod: AgentPod, audience: str = AUDIENCE) -> str:
    return server.service_account_token(
        NAMESPACE, AGENT_SA, audiences=[audience], pod=(pod.name, pod.uid), expiration_seconds=600
    )


def test_a_pod_bound_token_names_the_pod_and_its_node(
    deployed: ApiServer, reviewer: KubeClient, agent_on_x: AgentPod
) -> None:
    who = reviewer.review_token(agent_token(deployed, agent_on_x), [AUDIENCE])
    assert who.service_account == (NAMESPACE, AGENT_SA)
    assert (who.pod_name, who.pod_uid) == (agent_on_x.name, agent_on_x.uid)
    assert who.node_name == agent_on_x.node
    assert who.node_uid  # the Node's uid: a re-created node of the same name differs
    assert who.audiences == (AUDIENCE,)
    assert who.require_node(agent_on_x.node) is who


def test_a_token_for_node_x_does_not_pass_as_node_y(
    deployed: ApiServer, reviewer: KubeClient, nodes: tuple[str, str], agent_on_x: AgentPod
) -> None:
    who = reviewer.review_token(agent_token(deployed, agent_on_x), [AUDIENCE])
    with pytest.raises(TokenRejected, match=f"belongs to node {nodes[0]}, not {nodes[1]}"):
        who.require_node(nodes[1])


def test_a_token_for_another_audience_is_refused(
    deployed: ApiServer, reviewer: KubeClient, agent_on_x: AgentPod
) -> None:
    # ours, presented where another audience is expected
    with pytest.raises(TokenRejected):
        reviewer.review_token(agent_token(deployed, agent_on_x), ["sts.amazonaws.com"])
    # another service's (here the apiserver's own), presented to us
    theirs = agent_token(deployed, agent_on_x, audience="https://kubernetes.default.svc")
    with pytest.raises(TokenRejected):
        reviewer.review_token(theirs, [AUDIENCE])


def test_a_token_not_bound_to_a_pod_proves_no_node(
    deployed: ApiServer, reviewer: KubeClient, nodes: tuple[str, str]
) -> None:
    token = deployed.service_account_token(NAMESPACE, AGENT_SA, audiences=[AUDIENCE])
    who = reviewer.review_token(token, [AUDIENCE])
    assert who.service_account == (NAMESPACE, AGENT_SA) and who.node_name is None
    with pytest.raises(TokenRejected, match="not bound to a pod"):
        who.require_node(nodes[0])


def test_the_token_dies_with_its_pod(
    deployed: ApiServer, reviewer: KubeClient, agent_on_x: AgentPod
) -> None:
    token = agent_token(deployed, agent_on_x)
    assert reviewer.review_token(token, [AUDIENCE]).node_name == agent_on_x.node
    delete_pod(deployed, agent_on_x)

    def refused() -> bool:
        try:
            reviewer.review_token(token, [AUDIENCE])
        except TokenRejected:
            return True
        return False

    # Not at once: the apiserver caches a successful authentication for 10 s (its
    # TokenSuccessCacheTTL) and checks the pod in its informer cache.
    wait_for(refused, REVOCATION_WITHIN, "the dead pod's token to be refused", interval=0.5)


def test_a_forged_token_is_refused(reviewer: KubeClient) -> None:
    with pytest.raises(TokenRejected):
        reviewer.review_token("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", [AUDIENCE])
