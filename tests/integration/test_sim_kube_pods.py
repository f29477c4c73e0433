"""Pods and Namespaces through the real client: per node, status, immutability."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiException

from vpcnet_sim.kube import KubeEmulator


@pytest.fixture
def core(kube_api: Any) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


def pod(name: str, node: str | None = None, **labels: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(node_name=node, containers=[client.V1Container(name="c", image="busybox:1.36")]),
    )


def test_builtin_namespaces_exist(core: client.CoreV1Api) -> None:
    names = [n.metadata.name for n in core.list_namespace().items]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
    ns = core.read_namespace("kube-system")
    assert ns.status.phase == "Active"
    assert ns.metadata.labels["kubernetes.io/metadata.name"] == "kube-system"


def test_pods_by_node_across_namespaces(core: client.CoreV1Api) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team")))
    core.create_namespaced_pod("default", pod("a", "node-1"))
    core.create_namespaced_pod("team", pod("b", "node-1"))
    core.create_namespaced_pod("team", pod("c", "node-2"))
    core.create_namespaced_pod("kube-system", pod("d"))  # not scheduled yet

    def names(items: list[client.V1Pod]) -> list[str]:
        return [f"{p.metadata.namespace}/{p.metadata.name}" for p in items]

    on_node1 = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-1")
    assert names(on_node1.items) == ["default/a", "team/b"]
    assert names(core.list_namespaced_pod("team").items) == ["team/b", "team/c"]
    assert names(core.list_namespaced_pod("team", field_selector="spec.nodeName=node-2").items) == ["team/c"]
    assert names(core.list_pod_for_all_namespaces(field_selector="spec.nodeName=").items) == ["kube-system/d"]
    assert len(core.list_pod_for_all_namespaces().items) == 4


def test_pod_in_missing_namespace_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("nowhere", pod("a"))
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == 'namespaces "nowhere" not found'


def test_pod_namespace_must_match_the_path(core: client.CoreV1Api) -> None:
    p = pod("a")
    p.metadata.namespace = "kube-system"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("default", p)
    assert err.value.status == 400


def test_pod_defaults_and_status_subresource(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_pod("default", pod("a", "node-1"))
    assert created.status.phase == "Pending"
    assert created.spec.restart_policy == "Always" and created.metadata.generation == 1
    running = core.patch_namespaced_pod_status("a", "default", {"status": {
        "phase": "Running", "podIP": "10.0.1.7", "podIPs": [{"ip": "10.0.1.7"}],
        "conditions": [{"type": "Ready", "status": "True"}],
    }})
    assert running.status.pod_ip == "10.0.1.7" and running.status.phase == "Running"
    assert running.metadata.generation == 1  # status writes do not bump generation
    # a status write through the main resource is ignored
    ignored = core.patch_namespaced_pod("a", "default", {"status": {"phase": "Failed"}})
    assert ignored.status.phase == "Running"
    assert core.list_pod_for_all_namespaces(field_selector="status.podIP=10.0.1.7").items[0].metadata.name == "a"


def test_pod_spec_is_mostly_immutable(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod("a", "node-1"))
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_pod("a", "default", {"spec": {"nodeName": "node-2"}})
    assert err.value.status == 422
    assert "pod updates may not change fields other than" in json.loads(err.value.body)["message"]
    image = core.patch_namespaced_pod("a", "default", {"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}})
    assert image.spec.containers[0].image == "busybox:1.37"
    assert image.metadata.generation == 2


def test_pod_validation(core: client.CoreV1Api) -> None:
    bad = client.V1Pod(metadata=client.V1ObjectMeta(name="x"),
                       spec=client.V1PodSpec(containers=[client.V1Container(name="Bad_Name")]))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("default", bad)
    assert err.value.status == 422
    fields = {c["field"] for c in json.loads(err.value.body)["details"]["causes"]}
    assert fields == {"spec.containers[0].name", "spec.containers[0].image"}


def test_delete_pod_returns_it_and_watchers_see_deleted(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod("a", "node-1"))
    rv = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-1").metadata.resource_version
    deleted = core.delete_namespaced_pod("a", "default")
    assert isinstance(deleted, client.V1Pod) and deleted.metadata.name == "a"
    seen = list(watch.Watch().stream(core.list_pod_for_all_namespaces, resource_version=rv,
                                     field_selector="spec.nodeName=node-1", timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in seen] == [("DELETED", "a")]


def test_generate_name(core: client.CoreV1Api) -> None:
    p = pod("")
    p.metadata.name = None
    p.metadata.generate_name = "web-"
    created = core.create_namespaced_pod("default", p)
    assert created.metadata.name.startswith("web-") and len(created.metadata.name) == 9


def test_delete_collection_and_namespace(core: client.CoreV1Api, kube_emulator: KubeEmulator) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team")))
    kube_emulator.add_pod("a", "team", node_name="n1", labels={"app": "x"})
    kube_emulator.add_pod("b", "team", node_name="n1", labels={"app": "y"})
    kube_emulator.add_pod("c", "team", node_name="n2", labels={"app": "x"})
    core.delete_collection_namespaced_pod("team", label_selector="app=x")
    assert [p.metadata.name for p in core.list_namespaced_pod("team").items] == ["b"]
    core.delete_namespace("team")
    assert core.list_pod_for_all_namespaces().items == []
    with pytest.raises(ApiException) as err:
        core.delete_namespace("default")
    assert err.value.status == 403
