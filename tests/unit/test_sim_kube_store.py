"""The emulator's store and registry: resourceVersions, history window, semantics."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vpcnet_sim.kube.registry import JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, Registry, Selector
from vpcnet_sim.kube.resources import LEASES, NODES, PODS
from vpcnet_sim.kube.status import ApiStatusError
from vpcnet_sim.kube.store import Store


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "spec": {}}


def _commit(store: Store, name: str) -> None:
    store.commit("ADDED", "nodes", "", name, {"metadata": {"name": name}}, None)


def test_resource_versions_increase_monotonically() -> None:
    store = Store(history=10)
    versions = []
    for i in range(5):
        _commit(store, f"n{i}")
        versions.append(int(store.get("nodes", "", f"n{i}")["metadata"]["resourceVersion"]))  # type: ignore[index]
    assert versions == sorted(versions) and len(set(versions)) == 5


def test_history_window_and_floor() -> None:
    store = Store(history=3, initial_rv=100)
    for i in range(5):
        _commit(store, f"n{i}")  # rv 101..105
    assert store.floor == 102
    changes, current = store.changes_after(102)
    assert changes is not None and [c.rv for c in changes] == [103, 104, 105] and current == 105
    assert store.changes_after(101)[0] is None  # 102 fell out of the window


def test_compaction_expires_every_existing_position() -> None:
    store = Store(history=10)
    _commit(store, "a")
    before = store.rv
    store.compact()
    assert store.changes_after(before)[0] is None
    changes, _ = store.changes_after(store.rv)
    assert changes == []


def test_history_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Store(history=0)


@pytest.fixture
def registry() -> Registry:
    return Registry(Store(history=100))


def test_noop_patch_keeps_resource_version_and_emits_no_change(registry: Registry) -> None:
    created = registry.create(NODES, None, node("n1", a="1"))
    rv = created["metadata"]["resourceVersion"]
    same = registry.patch(NODES, None, "n1", MERGE_PATCH, b'{"metadata":{"labels":{"a":"1"}}}')
    assert same["metadata"]["resourceVersion"] == rv
    assert registry.store.changes_after(int(rv))[0] == []


def test_patch_with_stale_resource_version_conflicts(registry: Registry) -> None:
    created = registry.create(NODES, None, node("n1"))
    registry.patch(NODES, None, "n1", MERGE_PATCH, b'{"metadata":{"labels":{"x":"1"}}}')
    stale = created["metadata"]["resourceVersion"]
    body = json.dumps({"metadata": {"resourceVersion": stale, "labels": {"x": "2"}}}).encode()
    with pytest.raises(ApiStatusError) as err:
        registry.patch(NODES, None, "n1", STRATEGIC_PATCH, body)
    assert (err.value.code, err.value.reason) == (409, "Conflict")


def test_json_patch_test_failure_is_422(registry: Registry) -> None:
    registry.create(NODES, None, node("n1"))
    with pytest.raises(ApiStatusError) as err:
        registry.patch(NODES, None, "n1", JSON_PATCH,
                       b'[{"op":"test","path":"/metadata/resourceVersion","value":"1"}]')
    assert (err.value.code, err.value.reason) == (422, "Invalid")


def test_unknown_patch_type_is_415(registry: Registry) -> None:
    registry.create(NODES, None, node("n1"))
    with pytest.raises(ApiStatusError) as err:
        registry.patch(NODES, None, "n1", "application/x-yaml", b"{}")
    assert err.value.code == 415 and err.value.reason == "UnsupportedMediaType"


def test_lease_update_requires_a_resource_version(registry: Registry) -> None:
    registry.create(LEASES, "default", {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}})
    with pytest.raises(ApiStatusError) as err:
        registry.update(LEASES, "default", "l", {"metadata": {"name": "l"}, "spec": {"holderIdentity": "b"}})
    assert err.value.code == 422
    assert err.value.message.startswith('leases.coordination.k8s.io "l" is invalid: metadata.resourceVersion')


def test_selector_transitions(registry: Registry) -> None:
    registry.create(NODES, None, node("n1", role="a"))
    start = registry.store.rv
    registry.patch(NODES, None, "n1", MERGE_PATCH, b'{"metadata":{"labels":{"role":"b"}}}')
    registry.patch(NODES, None, "n1", MERGE_PATCH, b'{"metadata":{"labels":{"role":"a"}}}')
    changes, _ = registry.store.changes_after(start)
    assert changes is not None
    selector = Selector.parse(NODES, None, "role=a", None)
    assert [selector.event_for(c) for c in changes] == ["DELETED", "ADDED"]


def test_list_pagination_is_a_consistent_snapshot(registry: Registry) -> None:
    for i in range(5):
        registry.create(NODES, None, node(f"n{i}"))
    first = registry.list_collection(NODES, Selector(NODES, None), limit=2)
    assert [n["metadata"]["name"] for n in first["items"]] == ["n0", "n1"]
    assert first["metadata"]["remainingItemCount"] == 3
    registry.create(NODES, None, node("n5"))  # not in the snapshot being paged
    registry.delete(NODES, None, "n3")  # still in it
    names = []
    token = first["metadata"]["continue"]
    while token:
        page = registry.list_collection(NODES, Selector(NODES, None), limit=2, continue_token=token)
        assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        names += [n["metadata"]["name"] for n in page["items"]]
        token = page["metadata"].get("continue")
    assert names == ["n2", "n3", "n4"]


def test_pod_creation_resets_status_and_defaults_spec(registry: Registry) -> None:
    pod = registry.create(PODS, "default", {
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1"},
    })
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert pod["spec"]["restartPolicy"] == "Always"
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    assert pod["metadata"]["generation"] == 1
