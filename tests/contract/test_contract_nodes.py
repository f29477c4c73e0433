"""Nodes as vpcnet reads and writes them: get/list, taints (merge patches carrying the
resourceVersion read), labels and annotations (merge patches of the map), and the
strategic-merge and JSON patches a cluster's other writers use on the same fields."""

from __future__ import annotations

import json

import pytest

from tests.contract.conftest import Server
from vpcnet.errors import ConfigError, KubeConflict, KubePermanentError, NotFoundError
from vpcnet.kube.client import KubeClient
from vpcnet.kube.client.api import MERGE_PATCH
from vpcnet.kube.types import Taint
from vpcnet.wellknown import STATUS_ANNOTATION

SMP = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def path(node: str) -> str:
    return f"/api/v1/nodes/{node}"


def test_read_and_list_nodes(kube: KubeClient, node: str) -> None:
    got = kube.read_node(node)
    assert got is not None and got.name == node
    assert got.labels["node.kubernetes.io/instance-type"] == "m5.large"
    assert got.labels["topology.kubernetes.io/zone"] == "us-east-1b"
    ref = kube.get_node(node)
    assert ref is not None and ref.instance_id == "i-0123456789abcdef0"
    nodes, rv = kube.list_nodes()
    assert node in {n.name for n in nodes}
    assert int(rv) >= int(got.resource_version)


def test_a_missing_node_reads_as_none(kube: KubeClient) -> None:
    assert kube.read_node("no-such-node") is None
    assert kube.get_node("no-such-node") is None


def test_a_node_without_provider_id_is_a_config_error(server: Server, kube: KubeClient) -> None:
    server.add_node("c-noprovider", provider_id=None)
    try:
        with pytest.raises(ConfigError, match="providerID"):
            kube.get_node("c-noprovider")
    finally:
        kube._json("DELETE", path("c-noprovider"))


def test_taints_are_added_once_and_removed_by_key_and_effect(kube: KubeClient, node: str) -> None:
    assert kube.ensure_taint(node, "vpcnet.io/t", "NoSchedule") is True
    assert kube.ensure_taint(node, "vpcnet.io/t", "NoSchedule") is False  # converged
    assert kube.ensure_taint(node, "vpcnet.io/t", "NoExecute", value="v") is True
    got = kube.read_node(node)
    assert got is not None
    assert set(got.taints) == {Taint("vpcnet.io/t", "NoSchedule"),
                               Taint("vpcnet.io/t", "NoExecute", "v")}
    assert kube.remove_taint(node, "vpcnet.io/t", "NoExecute") is True
    got = kube.read_node(node)
    assert got is not None and got.taints == (Taint("vpcnet.io/t", "NoSchedule"),)
    assert kube.remove_taint(node, "vpcnet.io/t") is True
    assert kube.remove_taint(node, "vpcnet.io/t") is False
    # the last taint gone: the merge patch's null removes the list itself
    raw = kube._json("GET", path(node))
    assert "taints" not in raw["spec"]


def test_taints_on_a_missing_node(kube: KubeClient) -> None:
    assert kube.remove_taint("no-such-node", "k") is False
    with pytest.raises(NotFoundError):
        kube.ensure_taint("no-such-node", "k", "NoSchedule")


def test_a_patch_carrying_a_stale_resource_version_is_409(kube: KubeClient, node: str) -> None:
    stale = kube._json("GET", path(node))["metadata"]["resourceVersion"]
    kube.set_labels(node, {"vpcnet.io/bump": "1"})  # someone else's write
    for content_type in (MERGE_PATCH, SMP):
        with pytest.raises(KubeConflict):
            kube._json("PATCH", path(node), content_type=content_type, body={
                "metadata": {"resourceVersion": stale},
                "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]},
            })
    with pytest.raises(KubeConflict):
        kube._json("PATCH", path(node), content_type=JSON_PATCH, body=[
            {"op": "replace", "path": "/metadata/resourceVersion", "value": stale},
        ])
    got = kube.read_node(node)
    assert got is not None and got.taints == ()  # nothing of the refused writes landed


def test_ensure_taint_keeps_a_taint_written_concurrently(kube: KubeClient, node: str) -> None:
    """The 409 path end to end: a writer between our read and our patch makes the server
    refuse ours; the retry re-reads and keeps both taints."""
    other = KubeClient.__new__(KubeClient)
    other.__dict__.update(kube.__dict__)
    reads = 0
    real_read = kube.read_node

    def read_then_race(name: str):  # type: ignore[no-untyped-def]
        nonlocal reads
        current = real_read(name)
        reads += 1
        if reads == 1:  # the other writer lands right after our first read
            other._json("PATCH", path(name), content_type=MERGE_PATCH, body={
                "spec": {"taints": [{"key": "other", "effect": "NoSchedule"}]}})
        return current

    kube.read_node = read_then_race  # type: ignore[method-assign]
    assert kube.ensure_taint(node, "mine", "NoSchedule") is True
    assert reads == 2  # the first patch was refused with 409 and retried
    got = real_read(node)
    assert got is not None
    assert {t.key for t in got.taints} == {"other", "mine"}


def test_labels_and_annotations_merge_and_none_removes(kube: KubeClient, node: str) -> None:
    kube.set_labels(node, {"vpcnet.io/a": "1", "vpcnet.io/b": "2"})
    kube.set_labels(node, {"vpcnet.io/a": None, "vpcnet.io/c": "3"})
    kube.set_annotations(node, {"vpcnet.io/x": "1"})
    kube.set_annotations(node, {"vpcnet.io/x": None, "vpcnet.io/y": "2"})
    kube.set_status_summary(node, {"phase": "ready", "enis": 3})
    got = kube.read_node(node)
    assert got is not None
    assert {k: v for k, v in got.labels.items() if k.startswith("vpcnet.io/")} == {
        "vpcnet.io/b": "2", "vpcnet.io/c": "3"}
    assert got.labels["kubernetes.io/hostname"] == node  # untouched
    assert got.annotations["vpcnet.io/y"] == "2" and "vpcnet.io/x" not in got.annotations
    assert json.loads(got.annotations[STATUS_ANNOTATION]) == {"enis": 3, "phase": "ready"}


def test_an_invalid_label_or_taint_is_422(kube: KubeClient, node: str) -> None:
    with pytest.raises(KubePermanentError) as err:
        kube.set_labels(node, {"vpcnet.io/a": "not a valid value!"})
    assert err.value.status == 422
    with pytest.raises(KubePermanentError) as err:
        kube.ensure_taint(node, "k", "Sometimes")
    assert err.value.status == 422
    # the apiserver's own name for the field (not spec.taints: an upstream quirk)
    assert 'metadata.taints[0].effect: Unsupported value: "Sometimes"' in str(err.value)
    with pytest.raises(KubePermanentError) as err:
        kube.set_annotations(node, {"vpcnet.io/big": "x" * 300_000})  # > 256 KiB in total
    assert err.value.status == 422


def test_strategic_merge_patch_replaces_taints_and_merges_labels(
    kube: KubeClient, node: str
) -> None:
    kube.ensure_taint(node, "a", "NoSchedule")
    kube.set_annotations(node, {"vpcnet.io/keep": "1", "vpcnet.io/drop": "1"})
    # NodeSpec.taints has no patch strategy: a strategic patch replaces the whole list
    kube._json("PATCH", path(node), content_type=SMP, body={
        "spec": {"taints": [{"key": "b", "effect": "NoExecute"}]},
        "metadata": {"labels": {"vpcnet.io/s": "1", "kubernetes.io/os": None},
                     "annotations": {"vpcnet.io/drop": None, "vpcnet.io/new": "2"}},
    })
    got = kube.read_node(node)
    assert got is not None
    assert got.taints == (Taint("b", "NoExecute"),)
    assert got.labels["vpcnet.io/s"] == "1" and "kubernetes.io/os" not in got.labels
    assert got.labels["kubernetes.io/hostname"] == node
    assert got.annotations == {"vpcnet.io/keep": "1", "vpcnet.io/new": "2"}


def test_json_patch_on_labels_annotations_and_taints(kube: KubeClient, node: str) -> None:
    kube._json("PATCH", path(node), content_type=JSON_PATCH, body=[
        {"op": "add", "path": "/metadata/labels/vpcnet.io~1j", "value": "1"},
        {"op": "add", "path": "/spec/taints", "value": [{"key": "a", "effect": "NoSchedule"}]},
        {"op": "add", "path": "/spec/taints/-", "value": {"key": "b", "effect": "NoSchedule"}},
    ])
    got = kube.read_node(node)
    assert got is not None
    assert got.labels["vpcnet.io/j"] == "1"
    assert [t.key for t in got.taints] == ["a", "b"]
    rv = got.resource_version
    kube._json("PATCH", path(node), content_type=JSON_PATCH, body=[
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "remove", "path": "/spec/taints/0"},
    ])
    got = kube.read_node(node)
    assert got is not None and [t.key for t in got.taints] == ["b"]
    for refused in (
        [{"op": "test", "path": "/metadata/resourceVersion", "value": rv}],  # stale now
        [{"op": "remove", "path": "/metadata/labels/no-such-label"}],
        # the node has no annotations: an empty map is not stored, so there is nothing
        # to add a key to (the first annotation needs a merge patch, or an add of the map)
        [{"op": "add", "path": "/metadata/annotations/vpcnet.io~1a", "value": "1"}],
    ):
        with pytest.raises(KubePermanentError) as err:
            kube._json("PATCH", path(node), content_type=JSON_PATCH, body=refused)
        assert err.value.status == 422, refused
    kube.set_annotations(node, {"vpcnet.io/a": "1"})
    kube._json("PATCH", path(node), content_type=JSON_PATCH, body=[
        {"op": "replace", "path": "/metadata/annotations/vpcnet.io~1a", "value": "2"}])
    got = kube.read_node(node)
    assert got is not None and got.annotations["vpcnet.io/a"] == "2"


def test_writes_to_a_missing_node_are_404(kube: KubeClient) -> None:
    with pytest.raises(NotFoundError):
        kube.set_labels("no-such-node", {"vpcnet.io/a": "1"})
    with pytest.raises(NotFoundError):
        kube.set_annotations("no-such-node", {"vpcnet.io/a": "1"})


def test_a_new_node_is_tainted_not_ready_by_admission(kube: KubeClient) -> None:
    """TaintNodesByCondition: whoever creates a Node, it starts with
    node.kubernetes.io/not-ready:NoSchedule (the node lifecycle controller lifts it)."""
    body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "c-admitted"},
            "spec": {"taints": [{"key": "vpcnet.io/not-ready", "effect": "NoSchedule"}]}}
    created = kube._json("POST", "/api/v1/nodes", body=body)
    try:
        assert created["spec"]["taints"] == [
            {"key": "vpcnet.io/not-ready", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
        ]
    finally:
        kube._json("DELETE", path("c-admitted"))
