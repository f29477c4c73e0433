"""RBAC grants each component exactly the Kubernetes API calls its code makes.

The expected calls are a literal table here (``API_CALLS``). Two tests hold it against
two sources: the code (``kube_calls``' static analysis: KubeClient's requests, and which
KubeClient methods each component's modules call) and the rendered manifests' RBAC. A new
call, a dropped grant or an analysis that stops seeing a call each fails until the table
is changed on purpose. A missing grant would be a 403 in a real cluster; an extra one is
privilege nobody uses.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from tests.unit.kube_calls import (
    Triple,
    client_requests,
    component_needs,
    request_methods_by_module,
    unattributed_requests,
)
from tests.unit.manifests_render import BASE, find, pod_spec, render, workloads

NAMESPACE = "vpcnet-system"
# component -> (its ServiceAccount, the entry modules its process runs)
COMPONENTS: dict[str, tuple[str, list[str]]] = {
    "watcher": ("vpcnet-watcher", ["vpcnet.cli.watcher_cmd", "vpcnet.watcher.loop"]),
    "workers": ("vpcnet-workers", ["workers", "workers.tasks"]),
    "agent": ("vpcnet-agent", ["vpcnet.cli.agent_cmd", "vpcnet.agent.main"]),
    # beat and flower load the Celery app but never run a task; only their own code counts
    "beat": ("vpcnet-beat", ["beat"]),
    "credentials": ("vpcnet-credentials", ["vpcnet.cli.credentials_cmd"]),
}
WORKLOAD_SA = {
    "vpcnet-watcher": "vpcnet-watcher",
    "vpcnet-workers": "vpcnet-workers",
    "vpcnet-scan-workers": "vpcnet-workers",  # node_ready patches the node
    "vpcnet-agent": "vpcnet-agent",
    "vpcnet-beat": "vpcnet-beat",
    "vpcnet-flower": "vpcnet-flower",
    "vpcnet-redis": "vpcnet-redis",
    "vpcnet-credentials": "vpcnet-credentials",
}
CLUSTER_SCOPED = {"nodes", "nodes/status", "tokenreviews"}


def _triples(table: dict[tuple[str, str], tuple[str, ...]]) -> frozenset[Triple]:
    return frozenset((group, resource, verb) for (group, resource), verbs in table.items() for verb in verbs)


# component -> the (apiGroup, resource, verb) calls its code makes, and nothing else
API_CALLS: dict[str, frozenset[Triple]] = {
    "watcher": _triples({
        ("", "nodes"): ("get", "list", "watch", "patch"),  # informer; not-ready taint
        ("", "events"): ("create", "get", "patch"),  # Events, aggregated by count
        ("coordination.k8s.io", "leases"): ("create", "get", "update"),  # leader election
    }),
    "workers": _triples({
        ("", "nodes"): ("get", "list", "patch"),  # read a node, taints
        ("", "events"): ("create", "get", "patch"),
    }),
    "agent": frozenset(),  # Redis and IMDS only
    "beat": frozenset(),  # its lock is in Redis
    "credentials": _triples({
        ("authentication.k8s.io", "tokenreviews"): ("create",),  # whose token an agent presents
    }),
}


def granted(sa: str) -> dict[Triple, list[dict[str, Any]]]:
    """(group, resource, verb) -> the rule contexts granting it to ``sa``."""
    docs = render(BASE)
    out: dict[Triple, list[dict[str, Any]]] = defaultdict(list)
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == sa and s["namespace"] == NAMESPACE
            for s in binding.get("subjects", [])
        ):
            continue
        ref = binding["roleRef"]
        role = find(docs, ref["kind"], ref["name"])
        ns = binding["metadata"].get("namespace")  # None: cluster-wide
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        out[(group, resource, verb)].append(
                            {"namespace": ns, "resourceNames": rule.get("resourceNames")}
                        )
    return out


def config() -> dict[str, str]:
    data: dict[str, str] = find(render(BASE), "ConfigMap", "vpcnet-config")["data"]
    return data


def test_client_analysis_maps_requests_to_rbac_verbs() -> None:
    src = '''
class KubeClient:
    def _json(self, method, path, **kw): ...
    def _p(self, ns, name=""):
        base = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
        return f"{base}/{name}" if name else base
    def a(self, n):
        return self._json("PATCH", f"/api/v1/nodes/{n}")
    def b(self):
        q = [("watch", "true")]
        return self._json("GET", "/api/v1/nodes", query=q)
    def c(self, ns):
        self.a("x")
        return self._json("POST", self._p(ns))
    def d(self, ns, n):
        path = self._p(ns, n)
        return self._json("PUT", path)
'''
    got = client_requests({"client": src})
    assert got["a"] == {("", "nodes", "patch")}
    assert got["b"] == {("", "nodes", "watch")}
    assert got["c"] == {("coordination.k8s.io", "leases", "create"), ("", "nodes", "patch")}
    assert got["d"] == {("coordination.k8s.io", "leases", "update")}


def test_client_analysis_follows_kubeclient_bases_across_modules() -> None:
    sources = {
        "c.api": "class Core:\n    def _json(self, method, path, **kw): ...\n",
        "c.nodes": (
            "class Nodes(api.Core):\n"
            "    def read(self, n):\n"
            "        return self._json('GET', f'/api/v1/nodes/{n}')\n"
        ),
        "c.taints": (
            "class Taints(Nodes):\n"
            "    def taint(self, n):\n"
            "        self.read(n)\n"
            "        return self._json('PATCH', f'/api/v1/nodes/{n}')\n"
        ),
        "c.pods": "class Pods(Core):\n    def pods(self):\n        return self._json('GET', '/api/v1/pods')\n",
        "c.orphan": (
            "class Orphan(Core):\n"
            "    def nodes(self):\n"
            "        return self._json('GET', '/api/v1/nodes')\n"
            "def helper(api):\n"
            "    return api._json('GET', '/api/v1/pods')\n"
        ),
        "c.client": "class KubeClient(Taints, Pods):\n    pass\n",
    }
    assert client_requests(sources) == {
        "read": {("", "nodes", "get")},
        "taint": {("", "nodes", "get"), ("", "nodes", "patch")},
        "pods": {("", "pods", "list")},
    }
    assert request_methods_by_module(sources) == {
        "c.nodes": {"read"}, "c.taints": {"taint"}, "c.pods": {"pods"}
    }
    assert unattributed_requests(sources) == ["c.orphan:3", "c.orphan:5"]


def test_client_analysis_refuses_a_method_two_parts_define() -> None:
    sources = {
        "c.a": "class A:\n    def get(self): ...\n",
        "c.b": "class B:\n    def get(self): ...\n",
        "c.client": "class KubeClient(A, B):\n    pass\n",
    }
    with pytest.raises(AssertionError, match="get defined by two parts"):
        client_requests(sources)


def test_every_component_has_its_row() -> None:
    assert set(API_CALLS) == set(COMPONENTS)


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_the_code_calls_exactly_the_listed_api(component: str) -> None:
    assert component_needs(COMPONENTS[component][1]) == API_CALLS[component]


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_rbac_grants_exactly_the_listed_api(component: str) -> None:
    assert set(granted(COMPONENTS[component][0])) == API_CALLS[component]


def test_grants_are_scoped_to_where_the_code_acts() -> None:
    cfg = config()
    for sa, _ in COMPONENTS.values():
        for (group, resource, verb), contexts in granted(sa).items():
            for ctx in contexts:
                if resource in CLUSTER_SCOPED:
                    assert ctx["namespace"] is None
                elif resource == "events":
                    assert ctx["namespace"] == cfg["VPCNET_EVENT_NAMESPACE"], (sa, verb)
                elif resource == "leases":
                    assert ctx["namespace"] == cfg["VPCNET_LEASE_NAMESPACE"], (sa, verb)
                    if verb != "create":  # RBAC cannot restrict create by name
                        assert ctx["resourceNames"] == [cfg["VPCNET_LEASE_NAME"]], (sa, verb)
                else:
                    raise AssertionError(f"no scoping rule for {group}/{resource}")


def test_components_without_api_calls_get_no_token() -> None:
    docs = render(BASE)
    for w in workloads(docs):
        sa = pod_spec(w)["serviceAccountName"]
        assert sa == WORKLOAD_SA[w["metadata"]["name"]]
        if not granted(sa):
            account = find(docs, "ServiceAccount", sa)
            assert account.get("automountServiceAccountToken") is False, sa
            assert pod_spec(w).get("automountServiceAccountToken") in (None, False), sa


def test_every_client_method_is_classified() -> None:
    """A new KubeClient request must map to a known RBAC triple (else the analysis raises)."""
    assert any(client_requests().values())
