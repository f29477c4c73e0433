"""List+watch through the real client: resourceVersions, 410 Gone, bookmarks, selectors."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiException

from vpcnet_sim.kube import KubeEmulator


@pytest.fixture
def core(kube_api: Any) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


def emulator(**kw: Any) -> Iterator[KubeEmulator]:
    kube = KubeEmulator(**kw).start()
    try:
        yield kube
    finally:
        kube.stop()


@pytest.fixture
def small_history() -> Iterator[KubeEmulator]:
    yield from emulator(history=3)


@pytest.fixture
def fast_bookmarks() -> Iterator[KubeEmulator]:
    yield from emulator(bookmark_interval=0.05)


def events(core: client.CoreV1Api, **kw: Any) -> list[tuple[str, str, str]]:
    """(type, name, resourceVersion) of a bounded watch (timeout_seconds required)."""
    return [(e["type"], e["raw_object"]["metadata"].get("name", ""),
             e["raw_object"]["metadata"]["resourceVersion"])
            for e in watch.Watch().stream(core.list_node, **kw)]


def test_list_then_watch_from_the_list_version(core: client.CoreV1Api, kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("before")
    listed = core.list_node()
    rv = listed.metadata.resource_version
    kube_emulator.add_node("n1")
    core.patch_node("n1", {"metadata": {"labels": {"a": "1"}}})
    deleted_rv = int(core.read_node("n1").metadata.resource_version)
    core.delete_node("n1")
    seen = list(watch.Watch().stream(core.list_node, resource_version=rv, timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in seen] == [
        ("ADDED", "n1"), ("MODIFIED", "n1"), ("DELETED", "n1")]
    versions = [int(e["object"].metadata.resource_version) for e in seen]
    assert versions == sorted(versions) and versions[0] > int(rv)
    final = seen[-1]["object"]  # DELETED carries the final object at the deletion's version
    assert final.metadata.labels["a"] == "1" and versions[-1] > deleted_rv
    assert isinstance(final, client.V1Node)


def test_watch_without_version_starts_with_the_current_state(core: client.CoreV1Api,
                                                              kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("a")
    kube_emulator.add_node("b")
    assert [(t, n) for t, n, _ in events(core, timeout_seconds=1)] == [("ADDED", "a"), ("ADDED", "b")]
    assert [(t, n) for t, n, _ in events(core, resource_version="0", timeout_seconds=1)] == [
        ("ADDED", "a"), ("ADDED", "b")]


def test_watch_from_version_older_than_the_window_gets_410(core_small: client.CoreV1Api,
                                                           small_history: KubeEmulator) -> None:
    rv = core_small.list_node().metadata.resource_version
    for i in range(5):
        small_history.add_node(f"n{i}")
    with pytest.raises(ApiException) as err:  # with a timeout the client does not retry
        list(watch.Watch().stream(core_small.list_node, resource_version=rv, timeout_seconds=5))
    assert err.value.status == 410
    assert err.value.reason.startswith("Expired: too old resource version: ")


@pytest.fixture
def core_small(small_history: KubeEmulator) -> Iterator[client.CoreV1Api]:
    api = small_history.api_client()
    yield client.CoreV1Api(api)
    api.close()


def test_the_410_error_event_is_shaped_like_the_apiservers(core: client.CoreV1Api,
                                                           kube_emulator: KubeEmulator) -> None:
    rv = core.list_node().metadata.resource_version
    kube_emulator.compact()
    resp = core.list_node(watch=True, resource_version=rv, timeout_seconds=5, _preload_content=False)
    try:
        assert resp.status == 200  # the apiserver reports an expired watch inside the stream
        lines = [line for line in resp.read().decode().splitlines() if line]
    finally:
        resp.release_conn()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event == {"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": event["object"]["message"], "reason": "Expired", "code": 410}}
    assert event["object"]["message"].startswith(f"too old resource version: {rv} (")


def _watch_in_thread(core: client.CoreV1Api, **kw: Any) -> tuple[queue.Queue[Any], threading.Thread, watch.Watch]:
    out: queue.Queue[Any] = queue.Queue()
    w = watch.Watch()

    def run() -> None:
        try:
            for e in w.stream(core.list_node, **kw):
                out.put((e["type"], e["raw_object"]["metadata"].get("name")))
            out.put("END")
        except ApiException as e:
            out.put(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return out, thread, w


def test_compaction_makes_a_running_watch_fail_with_410(core: client.CoreV1Api,
                                                        kube_emulator: KubeEmulator) -> None:
    rv = core.list_node().metadata.resource_version
    out, thread, _ = _watch_in_thread(core, resource_version=rv)  # no timeout: client retries once
    kube_emulator.add_node("n1")
    assert out.get(timeout=10) == ("ADDED", "n1")
    kube_emulator.compact()
    err = out.get(timeout=10)
    assert isinstance(err, ApiException) and err.status == 410
    thread.join(10)
    assert not thread.is_alive()


def test_relist_after_410_then_watch_works(core: client.CoreV1Api, kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("n1")
    kube_emulator.compact()
    listed = core.list_node()  # the recovery a watcher does after 410
    kube_emulator.add_node("n2")
    seen = events(core, resource_version=listed.metadata.resource_version, timeout_seconds=1)
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "n2")]


def test_timeout_seconds_ends_the_watch_with_a_final_bookmark(core: client.CoreV1Api,
                                                              kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("n1")
    rv = core.list_node().metadata.resource_version
    w = watch.Watch()
    seen = list(w.stream(core.list_node, resource_version=rv, timeout_seconds=1, allow_watch_bookmarks=True))
    assert [e["type"] for e in seen] == ["BOOKMARK"]
    assert seen[0]["raw_object"]["metadata"]["resourceVersion"] == rv
    assert seen[0]["raw_object"]["kind"] == "Node"
    assert w.resource_version == rv  # the client tracks bookmarks' versions


def test_periodic_bookmarks_carry_the_latest_version(fast_bookmarks: KubeEmulator) -> None:
    api = fast_bookmarks.api_client()
    try:
        core = client.CoreV1Api(api)
        rv = core.list_node().metadata.resource_version
        fast_bookmarks.add_node("n1")
        seen = events(core, resource_version=rv, timeout_seconds=1, allow_watch_bookmarks=True)
    finally:
        api.close()
    assert seen[0][:2] == ("ADDED", "n1")
    bookmarks = [v for t, _, v in seen if t == "BOOKMARK"]
    assert len(bookmarks) >= 2 and set(bookmarks) == {str(fast_bookmarks.resource_version)}


def test_send_initial_events_ends_with_an_annotated_bookmark(kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("a")
    api = kube_emulator.api_client()
    try:
        resp = client.CoreV1Api(api).list_node(
            watch=True, send_initial_events=True, allow_watch_bookmarks=True,
            resource_version_match="NotOlderThan", timeout_seconds=1, _preload_content=False)
        lines = [json.loads(line) for line in resp.read().decode().splitlines() if line]
        resp.release_conn()
    finally:
        api.close()
    assert [e["type"] for e in lines] == ["ADDED", "BOOKMARK", "BOOKMARK"]
    assert lines[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_selector_transitions_are_added_and_deleted(core: client.CoreV1Api, kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("n1", labels={"pool": "a"})
    kube_emulator.add_node("n2", labels={"pool": "b"})
    rv = core.list_node().metadata.resource_version
    core.patch_node("n1", {"metadata": {"labels": {"pool": "b"}}})  # leaves pool=a
    core.patch_node("n2", {"metadata": {"labels": {"pool": "a"}}})  # enters pool=a
    core.patch_node("n2", {"metadata": {"labels": {"x": "1"}}})
    seen = events(core, resource_version=rv, label_selector="pool=a", timeout_seconds=1)
    assert [(t, n) for t, n, _ in seen] == [("DELETED", "n1"), ("ADDED", "n2"), ("MODIFIED", "n2")]
    by_name = events(core, resource_version=rv, field_selector="metadata.name=n2", timeout_seconds=1)
    assert [(t, n) for t, n, _ in by_name] == [("MODIFIED", "n2"), ("MODIFIED", "n2")]


def test_many_concurrent_watchers_all_see_every_event(kube_emulator: KubeEmulator) -> None:
    api = kube_emulator.api_client()
    api.configuration.connection_pool_maxsize = 64
    core = client.CoreV1Api(api)
    try:
        rv = core.list_node().metadata.resource_version
        watchers = [_watch_in_thread(core, resource_version=rv, timeout_seconds=30) for _ in range(24)]
        for i in range(20):
            kube_emulator.add_node(f"n{i:02}")
        expected = [("ADDED", f"n{i:02}") for i in range(20)]
        for out, _, _ in watchers:
            got = [out.get(timeout=20) for _ in range(20)]
            assert got == expected
        # requests are served while the watches stay open
        assert len(core.list_node().items) == 20
    finally:
        kube_emulator.stop()  # ends the open watches
        for out, thread, _ in watchers:
            thread.join(10)
            assert not thread.is_alive()
            assert out.get_nowait() == "END"  # a clean end of stream, not an error
        api.close()


def test_stop_ends_open_watches(core: client.CoreV1Api, kube_emulator: KubeEmulator) -> None:
    out, thread, _ = _watch_in_thread(core, timeout_seconds=600)
    kube_emulator.add_node("n1")
    assert out.get(timeout=10) == ("ADDED", "n1")
    kube_emulator.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert out.get_nowait() == "END"


def test_invalid_watch_requests(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.list_node(watch=True, resource_version="abc", timeout_seconds=1)
    assert err.value.status == 400
    with pytest.raises(ApiException) as err:
        core.list_node(watch=True, send_initial_events=True, timeout_seconds=1)
    assert err.value.status == 422
