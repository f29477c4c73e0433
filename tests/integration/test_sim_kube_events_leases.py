"""Events (core/v1 and events.k8s.io/v1) and coordination.k8s.io Leases over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from vpcnet_sim.kube import KubeEmulator


@pytest.fixture
def core(kube_api: Any) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


@pytest.fixture
def events_api(kube_api: Any) -> client.EventsV1Api:
    return client.EventsV1Api(kube_api)


@pytest.fixture
def leases(kube_api: Any) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(kube_api)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def node_event(name: str, node: str, reason: str, count: int = 1) -> client.CoreV1Event:
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(name=name, namespace="default"),
        involved_object=client.V1ObjectReference(kind="Node", name=node, uid=node, api_version="v1"),
        reason=reason, message=f"{reason} on {node}", type="Warning", count=count,
        first_timestamp=now(), last_timestamp=now(),
        source=client.V1EventSource(component="vpcnet-worker"),
    )


def test_core_events_create_list_and_aggregate(core: client.CoreV1Api, kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("n1")
    created = core.create_namespaced_event("default", node_event("n1.1", "n1", "ENILimitReached"))
    assert created.involved_object.kind == "Node" and created.count == 1
    core.create_namespaced_event("default", node_event("n2.1", "n2", "Provisioned"))
    listed = core.list_namespaced_event("default", field_selector="involvedObject.name=n1")
    assert [e.reason for e in listed.items] == ["ENILimitReached"]
    assert [e.metadata.name for e in core.list_event_for_all_namespaces(field_selector="reason=Provisioned").items] == ["n2.1"]
    # the kubelet-style aggregation: PATCH count and lastTimestamp onto the same Event
    bumped = core.patch_namespaced_event("n1.1", "default", {"count": 2, "lastTimestamp": now().isoformat()})
    assert bumped.count == 2 and bumped.metadata.uid == created.metadata.uid
    assert core.list_namespaced_event("default", field_selector="type=Warning,source=vpcnet-worker").items


def test_core_event_namespace_must_match_the_involved_object(core: client.CoreV1Api) -> None:
    event = node_event("p.1", "n1", "X")
    event.involved_object = client.V1ObjectReference(kind="Pod", name="p", namespace="kube-system")
    with pytest.raises(ApiException) as err:
        core.create_namespaced_event("default", event)
    assert err.value.status == 422


def test_events_v1_create_and_shared_storage(core: client.CoreV1Api, events_api: client.EventsV1Api) -> None:
    created = events_api.create_namespaced_event("default", client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="n1.2"), event_time=now(),
        reporting_controller="vpcnet.io/watcher", reporting_instance="watcher-0",
        action="Provision", reason="Provisioning", type="Normal", note="attaching ENIs",
        regarding=client.V1ObjectReference(kind="Node", name="n1"),
    ))
    assert created.note == "attaching ENIs" and created.regarding.name == "n1"
    listed = events_api.list_namespaced_event("default")
    assert [e.metadata.name for e in listed.items] == ["n1.2"]
    # one resource served by two API versions, as on a real cluster
    legacy = core.read_namespaced_event("n1.2", "default")
    assert legacy.message == "attaching ENIs" and legacy.involved_object.name == "n1"
    assert legacy.reporting_component == "vpcnet.io/watcher"


def test_events_v1_validation(events_api: client.EventsV1Api) -> None:
    with pytest.raises(ApiException) as err:
        events_api.create_namespaced_event("default", client.EventsV1Event(
            metadata=client.V1ObjectMeta(name="bad"), event_time=now(), type="Sideways"))
    assert err.value.status == 422
    fields = {c["field"] for c in json.loads(err.value.body)["details"]["causes"]}
    assert fields == {"reportingController", "reportingInstance", "action", "reason", "type"}


# --- leases -----------------------------------------------------------------------------


def lease(name: str, holder: str) -> client.V1Lease:
    return client.V1Lease(metadata=client.V1ObjectMeta(name=name), spec=client.V1LeaseSpec(
        holder_identity=holder, lease_duration_seconds=15, acquire_time=now(), renew_time=now(),
        lease_transitions=0))


def test_lease_crud(leases: client.CoordinationV1Api) -> None:
    created = leases.create_namespaced_lease("kube-system", lease("vpcnet-watcher", "a"))
    assert created.spec.holder_identity == "a" and created.spec.lease_duration_seconds == 15
    raw = leases.read_namespaced_lease("vpcnet-watcher", "kube-system", _preload_content=False)
    spec = json.loads(raw.data)["spec"]  # MicroTime, re-encoded in UTC as the apiserver does
    assert spec["renewTime"].endswith("Z") and len(spec["renewTime"]) == len("2025-01-01T00:00:00.000000Z")
    got = leases.read_namespaced_lease("vpcnet-watcher", "kube-system")
    got.spec.renew_time = now()
    renewed = leases.replace_namespaced_lease("vpcnet-watcher", "kube-system", got)
    assert int(renewed.metadata.resource_version) > int(created.metadata.resource_version)
    patched = leases.patch_namespaced_lease("vpcnet-watcher", "kube-system", {"spec": {"holderIdentity": "b"}})
    assert patched.spec.holder_identity == "b"
    assert [x.metadata.name for x in leases.list_namespaced_lease("kube-system").items] == ["vpcnet-watcher"]
    leases.delete_namespaced_lease("vpcnet-watcher", "kube-system")
    with pytest.raises(ApiException) as err:
        leases.read_namespaced_lease("vpcnet-watcher", "kube-system")
    assert err.value.status == 404
    assert json.loads(err.value.body)["details"] == {
        "name": "vpcnet-watcher", "group": "coordination.k8s.io", "kind": "leases"}


def test_lease_create_existing_is_409_already_exists(leases: client.CoordinationV1Api) -> None:
    leases.create_namespaced_lease("default", lease("l", "a"))
    with pytest.raises(ApiException) as err:
        leases.create_namespaced_lease("default", lease("l", "b"))
    assert err.value.status == 409
    body = json.loads(err.value.body)
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'leases.coordination.k8s.io "l" already exists'


def test_stale_lease_update_is_409(leases: client.CoordinationV1Api) -> None:
    leases.create_namespaced_lease("default", lease("l", "a"))
    mine = leases.read_namespaced_lease("l", "default")
    theirs = leases.read_namespaced_lease("l", "default")
    theirs.spec.holder_identity = "b"
    leases.replace_namespaced_lease("l", "default", theirs)
    mine.spec.renew_time = now()
    with pytest.raises(ApiException) as err:
        leases.replace_namespaced_lease("l", "default", mine)
    assert err.value.status == 409
    assert json.loads(err.value.body)["message"] == (
        'Operation cannot be fulfilled on leases.coordination.k8s.io "l": the object has been '
        "modified; please apply your changes to the latest version and try again")
    assert leases.read_namespaced_lease("l", "default").spec.holder_identity == "b"


def test_lease_update_without_resource_version_is_rejected(leases: client.CoordinationV1Api) -> None:
    leases.create_namespaced_lease("default", lease("l", "a"))
    with pytest.raises(ApiException) as err:
        leases.replace_namespaced_lease("l", "default", lease("l", "b"))
    assert err.value.status == 422


def test_lease_put_creates_a_missing_lease(leases: client.CoordinationV1Api) -> None:
    created = leases.replace_namespaced_lease("l", "default", lease("l", "a"))
    assert created.metadata.uid and created.spec.holder_identity == "a"


def test_exactly_one_of_racing_lease_updates_wins(kube_emulator: KubeEmulator) -> None:
    apis = [kube_emulator.api_client() for _ in range(8)]
    try:
        clients = [client.CoordinationV1Api(a) for a in apis]
        clients[0].create_namespaced_lease("default", lease("l", "nobody"))
        seen = [c.read_namespaced_lease("l", "default") for c in clients]
        results: list[int] = []
        barrier = threading.Barrier(len(clients))

        def take(i: int) -> None:
            seen[i].spec.holder_identity = f"candidate-{i}"
            barrier.wait()
            try:
                clients[i].replace_namespaced_lease("l", "default", seen[i])
                results.append(200)
            except ApiException as e:
                results.append(e.status)

        threads = [threading.Thread(target=take, args=(i,)) for i in range(len(clients))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(results) == [200] + [409] * (len(clients) - 1)
        holder = clients[0].read_namespaced_lease("l", "default").spec.holder_identity
        assert holder.startswith("candidate-")
    finally:
        for a in apis:
            a.close()
