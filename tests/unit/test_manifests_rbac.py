"""RBAC grants each component exactly the Kubernetes API calls its code makes.

The calls are derived from the code (``kube_calls``): KubeClient's requests, and which
KubeClient methods each component's modules call. A missing grant would be a 403 in a
real cluster; an extra one is privilege nobody uses.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from tests.unit.kube_calls import Triple, client_requests, component_needs
from tests.unit.manifests_render import BASE, find, pod_spec, render, workloads

NAMESPACE = "vpcnet-system"
# component -> (its ServiceAccount, the entry modules its process runs)
COMPONENTS: dict[str, tuple[str, list[str]]] = {
    "watcher": ("vpcnet-watcher", ["vpcnet.cli.watcher_cmd", "vpcnet.watcher"]),
    "workers": ("vpcnet-workers", ["workers", "workers.tasks"]),
    "agent": ("vpcnet-agent", ["vpcnet.cli.agent_cmd", "vpcnet.agent.main"]),
    # beat and flower load the Celery app but never run a task; only their own code counts
    "beat": ("vpcnet-beat", ["beat"]),
    "credentials": ("vpcnet-credentials", ["vpcnet.cli.credentials_cmd"]),
}
WORKLOAD_SA = {
    "vpcnet-watcher": "vpcnet-watcher",
    "vpcnet-workers": "vpcnet-workers",
    "vpcnet-agent": "vpcnet-agent",
    "vpcnet-beat": "vpcnet-beat",
    "vpcnet-flower": "vpcnet-flower",
    "vpcnet-redis": "vpcnet-redis",
    "vpcnet-credentials": "vpcnet-credentials",
}
CLUSTER_SCOPED = {"nodes", "nodes/status", "tokenreviews"}


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
    got = client_requests(src)
    assert got["a"] == {("", "nodes", "patch")}
    assert got["b"] == {("", "nodes", "watch")}
    assert got["c"] == {("coordination.k8s.io", "leases", "create"), ("", "nodes", "patch")}
    assert got["d"] == {("coordination.k8s.io", "leases", "update")}


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_rbac_grants_exactly_what_the_code_calls(component: str) -> None:
    sa, entries = COMPONENTS[component]
    needs = component_needs(entries)
    assert set(granted(sa)) == needs


def test_watcher_and_workers_do_use_the_api() -> None:
    # Guards the analysis itself: these must not come out empty.
    assert ("", "nodes", "watch") in component_needs(COMPONENTS["watcher"][1])
    assert ("", "nodes", "patch") in component_needs(COMPONENTS["workers"][1])


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
