"""Least privilege, proven on the real kube-apiserver (authorization-mode Node,RBAC).

The kustomize base is applied as is; each component authenticates with a TokenRequest
token of its own ServiceAccount. Both ways:

- every KubeClient call the component's code makes (``tests/unit/kube_calls.py`` finds
  them in the code) succeeds, through vpcnet's real client, and has its effect;
- calls it must never make are refused with 403 (not 401: the token itself is valid).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.fixtures.apiserver import ApiServer
from tests.integration.apiserver_support import (
    CONFIG,
    NAMESPACE,
    apply_base,
    create_node,
    kube_client,
    status_of,
)
from tests.unit.kube_calls import ALIASES, client_requests, module_closure, used_methods
from tests.unit.test_manifests_rbac import COMPONENTS
from vpcnet.kube.client import KubeClient
from vpcnet.kube.leader import ElectionConfig, LeaderElector
from vpcnet.kube.types import WatchEventType
from vpcnet.wellknown import NOT_READY_TAINT

EVENTS_NS = CONFIG["VPCNET_EVENT_NAMESPACE"]
LEASE_NS = CONFIG["VPCNET_LEASE_NAMESPACE"]
LEASE_NAME = CONFIG["VPCNET_LEASE_NAME"]
ACCOUNTS = ("vpcnet-watcher", "vpcnet-workers", "vpcnet-agent", "vpcnet-beat",
            "vpcnet-flower", "vpcnet-redis", "vpcnet-credentials")
# KubeClient plumbing, not API calls
NOT_CALLS = {"close", "from_settings"}


@pytest.fixture(scope="module")
def deployed(kube_apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> ApiServer:
    apply_base(kube_apiserver, tmp_path_factory.mktemp("rbac"))
    return kube_apiserver


@pytest.fixture(scope="module")
def tokens(deployed: ApiServer) -> dict[str, str]:
    return {sa: deployed.service_account_token(NAMESPACE, sa) for sa in ACCOUNTS}


@pytest.fixture
def node(deployed: ApiServer) -> Iterator[str]:
    name = create_node(deployed, "rbac")
    yield name
    with deployed.api_client() as api:
        k8s.CoreV1Api(api).delete_node(name)


@pytest.fixture
def other_node(deployed: ApiServer) -> Iterator[str]:
    name = create_node(deployed, "rbac-other")
    yield name
    with deployed.api_client() as api:
        k8s.CoreV1Api(api).delete_node(name)


def as_component(server: ApiServer, tokens: dict[str, str], component: str) -> KubeClient:
    return kube_client(server, tokens[COMPONENTS[component][0]], component)


def calls_of(component: str) -> set[str]:
    """The KubeClient methods the component's code calls."""
    entries = COMPONENTS[component][1]
    files = module_closure(entries, exclude=("vpcnet.kube.client",))
    return used_methods(files, client_requests(), ALIASES) - NOT_CALLS


def admin_node(server: ApiServer, name: str) -> Any:
    with server.api_client() as api:
        return k8s.CoreV1Api(api).read_node(name)


def taint_keys(server: ApiServer, name: str) -> list[str]:
    # The real apiserver's TaintNodesByCondition has added node.kubernetes.io/not-ready too.
    return [t.key for t in admin_node(server, name).spec.taints or []]


def node_events(server: ApiServer, name: str) -> list[Any]:
    with server.api_client() as api:
        items = k8s.CoreV1Api(api).list_namespaced_event(
            EVENTS_NS, field_selector=f"involvedObject.name={name}"
        ).items
    return list(items)


# ---------------------------------------------------------------- every call succeeds


def watcher_calls(server: ApiServer, kube: KubeClient, node: str) -> dict[str, Callable[[], None]]:
    listed: dict[str, str] = {}

    def list_nodes() -> None:
        nodes, rv = kube.list_nodes()
        assert node in {n.name for n in nodes}
        listed["rv"] = rv

    def watch_nodes() -> None:
        kube.set_labels(node, {"vpcnet.io/test": "watched"})
        with kube.watch_nodes(listed["rv"], timeout_seconds=2) as watch:
            seen = [e for e in watch if e.node is not None and e.node.name == node]
        assert any(e.type is WatchEventType.MODIFIED for e in seen), seen

    def read_node() -> None:
        got = kube.read_node(node)
        assert got is not None and got.name == node

    def ensure_taint() -> None:
        assert kube.ensure_taint(node, NOT_READY_TAINT, "NoSchedule")
        assert NOT_READY_TAINT in taint_keys(server, node)

    def set_labels() -> None:
        kube.set_labels(node, {"vpcnet.io/instance-id": "i-0123456789abcdef0"})
        labels = admin_node(server, node).metadata.labels
        assert labels["vpcnet.io/instance-id"] == "i-0123456789abcdef0"

    def set_annotations() -> None:
        kube.set_annotations(node, {"vpcnet.io/test": "yes"})
        assert admin_node(server, node).metadata.annotations["vpcnet.io/test"] == "yes"

    def emit_event() -> None:
        # the repeat aggregates into the same Event: create, then get + patch
        kube.emit_event(node, "Test", "from the watcher")
        kube.emit_event(node, "Test", "from the watcher")
        assert [e.count for e in node_events(server, node)] == [2]

    def leases() -> None:
        # Election as the watcher runs it: acquire (create), renew (update), a standby
        # that cannot take it, release, and the standby's takeover (get + update).
        first = LeaderElector(kube, ElectionConfig(LEASE_NAME, LEASE_NS, f"{node}-a"))
        standby = LeaderElector(kube, ElectionConfig(LEASE_NAME, LEASE_NS, f"{node}-b"))
        assert first.step() and first.step()
        assert not standby.step()
        first.release()
        assert standby.step()
        standby.release()

    return {
        "list_nodes": list_nodes,
        "watch_nodes": watch_nodes,
        "read_node": read_node,
        "ensure_taint": ensure_taint,
        "set_labels": set_labels,
        "set_annotations": set_annotations,
        "emit_event": emit_event,
        "get_lease": leases,
        "create_lease": leases,
        "update_lease": leases,
    }


def workers_calls(server: ApiServer, kube: KubeClient, node: str) -> dict[str, Callable[[], None]]:
    def get_node() -> None:
        got = kube.get_node(node)
        assert got is not None and got.instance_id == "i-0123456789abcdef0"

    def list_nodes() -> None:
        assert node in {n.name for n in kube.list_nodes()[0]}

    def ensure_taint() -> None:
        assert kube.ensure_taint(node, NOT_READY_TAINT, "NoSchedule")
        assert NOT_READY_TAINT in taint_keys(server, node)

    def remove_taint() -> None:
        kube.ensure_taint(node, NOT_READY_TAINT, "NoSchedule")
        assert kube.remove_taint(node, NOT_READY_TAINT)
        assert NOT_READY_TAINT not in taint_keys(server, node)

    def emit_event() -> None:
        kube.emit_event(node, "Test", "from a worker", type="Warning")
        kube.emit_event(node, "Test", "from a worker", type="Warning")
        assert [(e.type, e.count) for e in node_events(server, node)] == [("Warning", 2)]

    return {
        "get_node": get_node,
        "list_nodes": list_nodes,
        "ensure_taint": ensure_taint,
        "remove_taint": remove_taint,
        "emit_event": emit_event,
    }


def credentials_calls(server: ApiServer, kube: KubeClient, node: str) -> dict[str, Callable[[], None]]:
    def review_token() -> None:
        # The issuer's one call (vpcnet/credentials/kube_review.py): a TokenReview.
        token = server.service_account_token(NAMESPACE, "vpcnet-agent", audiences=["vpcnet-credentials"])
        who = kube.review_token(token, ["vpcnet-credentials"])
        assert who.service_account == (NAMESPACE, "vpcnet-agent")

    return {"review_token": review_token}


CALLS = {"watcher": watcher_calls, "workers": workers_calls, "credentials": credentials_calls}


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_every_call_the_component_makes_succeeds(
    deployed: ApiServer, tokens: dict[str, str], node: str, component: str
) -> None:
    kube = as_component(deployed, tokens, component)
    try:
        calls = CALLS[component](deployed, kube, node) if component in CALLS else {}
        # Exercised here must be every method the code calls (a new call fails this test
        # until it is proven against the real server), and nothing it does not.
        assert set(calls) == calls_of(component)
        done: set[int] = set()
        for method in sorted(calls):
            if id(calls[method]) not in done:
                calls[method]()
                done.add(id(calls[method]))
    finally:
        kube.close()


def test_the_components_are_found_making_calls() -> None:
    # Guards the test above against an analysis that sees nothing.
    assert {"watch_nodes", "create_lease", "emit_event"} <= calls_of("watcher")
    assert {"get_node", "ensure_taint", "remove_taint"} <= calls_of("workers")


# ---------------------------------------------------------------- and nothing more


def forbidden_calls(node: str, other: str) -> list[tuple[str, str, Callable[[k8s.ApiClient], Any]]]:
    """(ServiceAccount, what, call) that must be refused."""

    def core(api: k8s.ApiClient) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(api)

    def leases(api: k8s.ApiClient) -> k8s.CoordinationV1Api:
        return k8s.CoordinationV1Api(api)

    patch = {"metadata": {"labels": {"vpcnet.io/forbidden": "yes"}}}
    lease = {"metadata": {"name": "not-vpcnet"}, "spec": {"holderIdentity": "x"}}
    secret = {"metadata": {"name": "stolen"}, "stringData": {"k": "v"}}
    out: list[tuple[str, str, Callable[[k8s.ApiClient], Any]]] = []
    everyone = ACCOUNTS
    for sa in everyone:
        out += [
            (sa, "read Secrets", lambda a: core(a).list_namespaced_secret(NAMESPACE)),
            (sa, "read Secrets cluster-wide", lambda a: core(a).list_secret_for_all_namespaces()),
            (sa, "create a Secret", lambda a: core(a).create_namespaced_secret(NAMESPACE, secret)),
            (sa, "delete Events",
             lambda a: core(a).delete_collection_namespaced_event(EVENTS_NS)),
            (sa, "delete a node", lambda a: core(a).delete_node(other)),
            (sa, "create a node",
             lambda a: core(a).create_node({"metadata": {"name": f"{other}-fake"}})),
            (sa, "list pods (status and audit run as an operator)",
             lambda a: core(a).list_pod_for_all_namespaces()),
            (sa, "update a node's status",
             lambda a: core(a).patch_node_status(other, {"status": {"phase": "x"}})),
            (sa, "list leases", lambda a: leases(a).list_namespaced_lease(LEASE_NS)),
            (sa, "touch another Lease",
             lambda a: leases(a).replace_namespaced_lease("kube-scheduler", "kube-system", lease)),
            (sa, "read ConfigMaps", lambda a: core(a).list_namespaced_config_map(NAMESPACE)),
            (sa, "create pods", lambda a: core(a).create_namespaced_pod(
                NAMESPACE, {"metadata": {"name": "x"}, "spec": {"containers": []}})),
        ]
    for sa in ("vpcnet-agent", "vpcnet-beat", "vpcnet-flower", "vpcnet-redis"):
        out += [
            (sa, "patch its node", lambda a: core(a).patch_node(node, patch)),
            (sa, "patch another node", lambda a: core(a).patch_node(other, patch)),
            (sa, "read a node", lambda a: core(a).read_node(node)),
            (sa, "list nodes", lambda a: core(a).list_node()),
            (sa, "create Events", lambda a: core(a).create_namespaced_event(
                EVENTS_NS, {"metadata": {"name": "x"}, "involvedObject": {"kind": "Node"}})),
        ]
    out += [
        ("vpcnet-workers", "watch nodes", lambda a: core(a).list_node(watch=True, timeout_seconds=1)),
        ("vpcnet-workers", "read the leader Lease",
         lambda a: leases(a).read_namespaced_lease(LEASE_NAME, LEASE_NS)),
        ("vpcnet-workers", "create a Lease",
         lambda a: leases(a).create_namespaced_lease(LEASE_NS, lease)),
        ("vpcnet-workers", "replace a node", lambda a: core(a).replace_node(
            other, {"metadata": {"name": other}})),
        ("vpcnet-watcher", "replace a node", lambda a: core(a).replace_node(
            other, {"metadata": {"name": other}})),
        ("vpcnet-watcher", "create a Lease in another namespace",
         lambda a: leases(a).create_namespaced_lease("default", lease)),
        ("vpcnet-watcher", "update a Lease of another name",
         lambda a: leases(a).replace_namespaced_lease("not-vpcnet", LEASE_NS, lease)),
        ("vpcnet-watcher", "delete the leader Lease",
         lambda a: leases(a).delete_namespaced_lease(LEASE_NAME, LEASE_NS)),
        ("vpcnet-watcher", "create Events outside the event namespace",
         lambda a: core(a).create_namespaced_event(
             NAMESPACE, {"metadata": {"name": "x"}, "involvedObject": {"kind": "Node"}})),
        ("vpcnet-workers", "delete an Event",
         lambda a: core(a).delete_namespaced_event("x", EVENTS_NS)),
    ]
    return out


def test_calls_no_component_may_make_are_refused(
    deployed: ApiServer, tokens: dict[str, str], node: str, other_node: str
) -> None:
    allowed: list[str] = []
    for sa, what, call in forbidden_calls(node, other_node):
        with deployed.api_client(tokens[sa]) as api:
            status = status_of(partial(call, api))
        if status != 403:
            allowed.append(f"{sa}: {what} -> {status}")
    assert allowed == []
    # and none of it happened
    assert "vpcnet.io/forbidden" not in (admin_node(deployed, other_node).metadata.labels or {})


def test_every_token_is_valid_so_the_refusals_are_authorization(
    deployed: ApiServer, tokens: dict[str, str]
) -> None:
    for sa in ACCOUNTS:
        with deployed.api_client(tokens[sa]) as api:
            review = k8s.AuthenticationV1Api(api).create_self_subject_review(
                {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
            )
        assert review.status.user_info.username == f"system:serviceaccount:{NAMESPACE}:{sa}"


# ---------------------------------------------------------------- the operator's reads

OPERATOR_SA = "vpcnet-test-operator"
OPERATOR_ENTRIES = ["vpcnet.cli.status_cmd", "vpcnet.cli.audit_cmd"]  # inspect is in status_cmd


def operator_calls() -> set[str]:
    files = module_closure(OPERATOR_ENTRIES, exclude=("vpcnet.kube.client",))
    return used_methods(files, client_requests(), ALIASES) - NOT_CALLS


@pytest.fixture(scope="module")
def operator_token(deployed: ApiServer) -> str:
    """`vpcnet status`/`inspect`/`audit` run with an operator's kubeconfig (docs/deploy.md),
    not a vpcnet ServiceAccount: here the least an operator needs, nodes and pods read."""
    with deployed.api_client() as api:
        k8s.CoreV1Api(api).create_namespaced_service_account(
            NAMESPACE, {"metadata": {"name": OPERATOR_SA}}
        )
        rbac = k8s.RbacAuthorizationV1Api(api)
        rbac.create_cluster_role({
            "metadata": {"name": OPERATOR_SA},
            "rules": [{"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list"]}],
        })
        rbac.create_cluster_role_binding({
            "metadata": {"name": OPERATOR_SA},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": OPERATOR_SA},
            "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA,
                          "namespace": NAMESPACE}],
        })
    return deployed.service_account_token(NAMESPACE, OPERATOR_SA)


def test_status_inspect_and_audit_reads_work_for_an_operator(
    deployed: ApiServer, operator_token: str, node: str, other_node: str
) -> None:
    pods = []
    with deployed.api_client() as api:
        for where in (node, other_node):
            pods.append(k8s.CoreV1Api(api).create_namespaced_pod(NAMESPACE, {
                "metadata": {"name": f"pod-on-{where}"},
                "spec": {"nodeName": where, "serviceAccountName": "vpcnet-agent",
                         "automountServiceAccountToken": False,
                         "containers": [{"name": "c", "image": "vpcnet:test"}]},
            }))
    kube = kube_client(deployed, operator_token, "vpcnet-cli")
    try:
        assert operator_calls() == {"list_nodes", "list_pods"}
        assert {node, other_node} <= {n.name for n in kube.list_nodes()[0]}
        assert {p.name for p in kube.list_pods()} >= {f"pod-on-{node}", f"pod-on-{other_node}"}
        # the real server's field selector on spec.nodeName
        assert [p.name for p in kube.list_pods(node_name=node)] == [f"pod-on-{node}"]
    finally:
        kube.close()
        with deployed.api_client() as api:
            for pod in pods:
                k8s.CoreV1Api(api).delete_namespaced_pod(
                    pod.metadata.name, NAMESPACE, grace_period_seconds=0
                )
