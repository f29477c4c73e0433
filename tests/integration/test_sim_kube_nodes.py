"""Nodes through the real ``kubernetes`` client over HTTP to the emulator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from vpcnet_sim.kube import KubeEmulator


@pytest.fixture
def core(kube_api: Any) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


def status_of(err: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.value.body)
    return body


def make_node(name: str, **labels: str) -> client.V1Node:
    return client.V1Node(metadata=client.V1ObjectMeta(name=name, labels=labels),
                         spec=client.V1NodeSpec(provider_id=f"aws:///us-east-1a/i-{name}"))


def test_create_get_list_delete(core: client.CoreV1Api) -> None:
    created = core.create_node(make_node("n1", role="a"))
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert int(created.metadata.resource_version) > 0
    got = core.read_node("n1")
    assert got.metadata.uid == created.metadata.uid
    assert got.spec.provider_id == "aws:///us-east-1a/i-n1"
    core.create_node(make_node("n2", role="b"))
    listed = core.list_node()
    assert [n.metadata.name for n in listed.items] == ["n1", "n2"]
    assert int(listed.metadata.resource_version) >= int(got.metadata.resource_version)
    result = core.delete_node("n1")  # a Status, as a dict ("object" in the client's spec)
    assert result["status"] == "Success" and result["details"]["name"] == "n1"
    assert result["details"]["uid"] == created.metadata.uid
    with pytest.raises(ApiException) as err:
        core.read_node("n1")
    assert err.value.status == 404
    assert status_of(err) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'nodes "n1" not found', "reason": "NotFound",
        "details": {"name": "n1", "kind": "nodes"}, "code": 404,
    }


def test_create_existing_is_409_already_exists(core: client.CoreV1Api) -> None:
    core.create_node(make_node("n1"))
    with pytest.raises(ApiException) as err:
        core.create_node(make_node("n1"))
    assert err.value.status == 409
    assert status_of(err)["reason"] == "AlreadyExists"
    assert status_of(err)["message"] == 'nodes "n1" already exists'


def test_list_selectors(core: client.CoreV1Api, kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("a1", instance_type="m5.large", labels={"pool": "a"})
    kube_emulator.add_node("a2", instance_type="m5.xlarge", labels={"pool": "a"})
    kube_emulator.add_node("b1", instance_type="m5.large", labels={"pool": "b"})

    def names(**kw: Any) -> list[str]:
        return [n.metadata.name for n in core.list_node(**kw).items]

    assert names(label_selector="pool=a") == ["a1", "a2"]
    assert names(label_selector="pool!=a") == ["b1"]
    assert names(label_selector="node.kubernetes.io/instance-type in (m5.large)") == ["a1", "b1"]
    assert names(label_selector="pool=a,node.kubernetes.io/instance-type=m5.xlarge") == ["a2"]
    assert names(field_selector="metadata.name=b1") == ["b1"]
    assert names(field_selector="metadata.name!=b1") == ["a1", "a2"]
    with pytest.raises(ApiException) as err:
        core.list_node(field_selector="spec.providerID=x")
    assert err.value.status == 400
    assert status_of(err)["message"] == "field label not supported: spec.providerID"


def test_add_node_looks_like_a_kubelet_registration(core: client.CoreV1Api, kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("ip-10-0-0-1", provider_id="aws:///us-west-2b/i-0123456789abcdef0",
                           instance_type="m5.xlarge", annotations={"vpcnet.io/mode": "warm"})
    node = core.read_node("ip-10-0-0-1")
    assert node.spec.provider_id == "aws:///us-west-2b/i-0123456789abcdef0"
    assert node.metadata.labels["node.kubernetes.io/instance-type"] == "m5.xlarge"
    assert node.metadata.labels["topology.kubernetes.io/zone"] == "us-west-2b"
    assert node.metadata.annotations == {"vpcnet.io/mode": "warm"}
    assert [c.type for c in node.status.conditions] == ["Ready"]


def test_update_with_stale_resource_version_is_409(core: client.CoreV1Api) -> None:
    core.create_node(make_node("n1"))
    first = core.read_node("n1")
    second = core.read_node("n1")
    first.metadata.labels = {"x": "1"}
    updated = core.replace_node("n1", first)
    assert int(updated.metadata.resource_version) > int(second.metadata.resource_version)
    second.metadata.labels = {"x": "2"}
    with pytest.raises(ApiException) as err:
        core.replace_node("n1", second)
    assert err.value.status == 409
    assert status_of(err) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'Operation cannot be fulfilled on nodes "n1": the object has been modified; '
                   "please apply your changes to the latest version and try again",
        "reason": "Conflict", "details": {"name": "n1", "kind": "nodes"}, "code": 409,
    }
    assert core.read_node("n1").metadata.labels == {"x": "1"}


def test_update_ignores_status_and_keeps_system_metadata(core: client.CoreV1Api, kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("n1")
    node = core.read_node("n1")
    uid = node.metadata.uid
    node.status.conditions[0].status = "False"
    node.metadata.uid = None
    node.metadata.creation_timestamp = None
    node.metadata.labels["x"] = "y"
    updated = core.replace_node("n1", node)
    assert updated.metadata.labels["x"] == "y"
    assert updated.status.conditions[0].status == "True"  # status changes need /status
    assert updated.metadata.uid == uid and updated.metadata.creation_timestamp is not None


def test_update_name_mismatch_is_400(core: client.CoreV1Api) -> None:
    core.create_node(make_node("n1"))
    node = core.read_node("n1")
    node.metadata.name = "other"
    with pytest.raises(ApiException) as err:
        core.replace_node("n1", node)
    assert err.value.status == 400


def test_provider_id_is_immutable(core: client.CoreV1Api) -> None:
    core.create_node(make_node("n1"))
    with pytest.raises(ApiException) as err:
        core.patch_node("n1", {"spec": {"providerID": "aws:///us-east-1a/i-other"}})
    assert err.value.status == 422
    body = status_of(err)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.providerID"


def test_invalid_taint_is_422_with_causes(core: client.CoreV1Api) -> None:
    core.create_node(make_node("n1"))
    with pytest.raises(ApiException) as err:
        core.patch_node("n1", {"spec": {"taints": [{"key": "vpcnet.io/not-ready", "effect": "Sometimes"}]}})
    assert err.value.status == 422
    body = status_of(err)
    assert body["message"] == (
        'Node "n1" is invalid: metadata.taints[0].effect: Unsupported value: "Sometimes": '
        'supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'
    )
    assert body["details"] == {"name": "n1", "kind": "Node", "causes": [{
        "reason": "FieldValueNotSupported", "field": "metadata.taints[0].effect",
        "message": 'Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
    }]}


def test_invalid_names_and_labels_are_422(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_node(make_node("Bad_Name"))
    assert err.value.status == 422
    with pytest.raises(ApiException) as err:
        core.create_node(make_node("n1", **{"bad key": "v"}))
    assert err.value.status == 422


# --- patches ------------------------------------------------------------------------


TAINT = {"key": "vpcnet.io/not-ready", "effect": "NoSchedule"}


def test_strategic_merge_patch_labels_annotations_taints(core: client.CoreV1Api, kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("n1", labels={"keep": "1", "drop": "1"},
                           taints=[{"key": "other", "effect": "NoExecute"}])
    # the client sends a dict body as application/strategic-merge-patch+json
    node = core.patch_node("n1", {
        "metadata": {"labels": {"vpcnet.io/instance-id": "i-0abc", "drop": None},
                     "annotations": {"vpcnet.io/enis": "2"}},
        "spec": {"taints": [TAINT]},
    })
    assert node.metadata.labels["vpcnet.io/instance-id"] == "i-0abc"
    assert node.metadata.labels["keep"] == "1" and "drop" not in node.metadata.labels
    assert node.metadata.annotations == {"vpcnet.io/enis": "2"}
    # taints are atomic in NodeSpec: the list is replaced, not merged
    assert [(t.key, t.effect) for t in node.spec.taints] == [("vpcnet.io/not-ready", "NoSchedule")]
    node = core.patch_node("n1", {"spec": {"taints": None}})
    assert node.spec.taints is None


def test_merge_patch(core: client.CoreV1Api, kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("n1", labels={"a": "1"})
    node = core.patch_node("n1", {"metadata": {"labels": {"b": "2", "a": None}}, "spec": {"taints": [TAINT]}},
                           _content_type="application/merge-patch+json")
    assert node.metadata.labels["b"] == "2" and "a" not in node.metadata.labels
    assert node.spec.taints[0].key == TAINT["key"]


def test_json_patch_with_test_for_optimistic_concurrency(core: client.CoreV1Api) -> None:
    # a label, so that the labels map exists for the JSON patch's add to go into (an
    # empty map is not stored, as on the apiserver; tests/contract checks that)
    core.create_node(make_node("n1", role="a"))
    rv = core.read_node("n1").metadata.resource_version
    node = core.patch_node("n1", [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/spec/taints", "value": [TAINT]},
        {"op": "add", "path": "/metadata/labels/vpcnet.io~1ready", "value": "false"},
    ])
    assert node.spec.taints[0].key == TAINT["key"]
    assert node.metadata.labels["vpcnet.io/ready"] == "false"
    with pytest.raises(ApiException) as err:  # rv is stale now: the test op fails
        core.patch_node("n1", [{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                               {"op": "remove", "path": "/spec/taints"}])
    assert err.value.status == 422
    assert status_of(err)["message"] == "the server rejected our request due to an error in our request"
    assert core.read_node("n1").spec.taints is not None
    with pytest.raises(ApiException) as err:
        core.patch_node("n1", [{"op": "remove", "path": "/spec/nothing"}])
    assert err.value.status == 422


def test_patch_carrying_a_stale_resource_version_is_409(core: client.CoreV1Api) -> None:
    core.create_node(make_node("n1"))
    rv = core.read_node("n1").metadata.resource_version
    core.patch_node("n1", {"metadata": {"labels": {"a": "1"}}})
    for content_type in ("application/strategic-merge-patch+json", "application/merge-patch+json"):
        with pytest.raises(ApiException) as err:
            core.patch_node("n1", {"metadata": {"resourceVersion": rv, "labels": {"a": "2"}}},
                            _content_type=content_type)
        assert err.value.status == 409
        assert status_of(err)["reason"] == "Conflict"
    current = core.read_node("n1")
    node = core.patch_node("n1", {"metadata": {"resourceVersion": current.metadata.resource_version,
                                               "labels": {"a": "3"}}})
    assert node.metadata.labels["a"] == "3"


def test_unknown_patch_type_is_415(core: client.CoreV1Api) -> None:
    core.create_node(make_node("n1"))
    with pytest.raises(ApiException) as err:
        core.patch_node("n1", {"metadata": {}}, _content_type="application/json")
    assert err.value.status == 415
    assert status_of(err)["reason"] == "UnsupportedMediaType"


def test_noop_patch_keeps_the_resource_version(core: client.CoreV1Api) -> None:
    core.create_node(make_node("n1", a="1"))
    before = core.read_node("n1").metadata.resource_version
    after = core.patch_node("n1", {"metadata": {"labels": {"a": "1"}}}).metadata.resource_version
    assert after == before


def test_patch_missing_node_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.patch_node("ghost", {"metadata": {"labels": {"a": "1"}}})
    assert err.value.status == 404


# --- status subresource -----------------------------------------------------------------


def test_status_subresource_get_patch_put(core: client.CoreV1Api, kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("n1")
    assert core.read_node_status("n1").status.conditions[0].type == "Ready"
    node = core.patch_node_status("n1", {
        "status": {"conditions": [{"type": "NetworkUnavailable", "status": "True", "reason": "NoENI"}]},
        "metadata": {"labels": {"ignored": "yes"}},
        "spec": {"unschedulable": True},
    })
    # conditions merge by type; spec and metadata are not writable through /status
    assert sorted(c.type for c in node.status.conditions) == ["NetworkUnavailable", "Ready"]
    assert "ignored" not in node.metadata.labels and not node.spec.unschedulable
    node.status.addresses = [client.V1NodeAddress(type="InternalIP", address="10.0.0.5")]
    node.spec.unschedulable = True
    replaced = core.replace_node_status("n1", node)
    assert [a.address for a in replaced.status.addresses] == ["10.0.0.5"]
    assert not replaced.spec.unschedulable
    with pytest.raises(ApiException) as err:
        core.replace_node_status("n1", node)  # node's resourceVersion is stale now
    assert err.value.status == 409


def test_finalizers_hold_deletion(core: client.CoreV1Api) -> None:
    node = make_node("n1")
    node.metadata.finalizers = ["vpcnet.io/release"]
    core.create_node(node)
    core.delete_node("n1")
    held = core.read_node("n1")
    assert held.metadata.deletion_timestamp is not None
    core.patch_node("n1", {"metadata": {"$deleteFromPrimitiveList/finalizers": ["vpcnet.io/release"]}})
    with pytest.raises(ApiException) as err:
        core.read_node("n1")
    assert err.value.status == 404


def test_delete_preconditions(core: client.CoreV1Api) -> None:
    created = core.create_node(make_node("n1"))
    with pytest.raises(ApiException) as err:
        core.delete_node("n1", body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version="1")))
    assert err.value.status == 409
    core.delete_node("n1", body=client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid=created.metadata.uid)))
    assert core.list_node().items == []


def test_dry_run_changes_nothing(core: client.CoreV1Api) -> None:
    core.create_node(make_node("n1"), dry_run="All")
    assert core.list_node().items == []


def test_conveniences_hand_out_copies(core: client.CoreV1Api, kube_emulator: KubeEmulator) -> None:
    node = kube_emulator.add_node("n1", labels={"a": "1"})
    node["metadata"]["labels"]["a"] = "mutated"
    fetched = kube_emulator.get_node("n1")
    assert fetched is not None and fetched["metadata"]["labels"]["a"] == "1"
    fetched["spec"]["providerID"] = "x"
    assert core.read_node("n1").metadata.labels["a"] == "1"
    assert core.read_node("n1").spec.provider_id == "aws:///us-east-1a/i-0abc"
    kube_emulator.delete_node("n1")
    assert kube_emulator.get_node("n1") is None and core.list_node().items == []
