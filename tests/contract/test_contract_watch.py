"""Node list + watch as the watcher runs it: a watch from a list's resourceVersion
replays every later change in order, streams live ones, ends by itself at
timeoutSeconds, and from a version the server no longer holds answers 410 Gone, after
which a relist gives a version to watch from again."""

from __future__ import annotations

import queue
import threading
import uuid

import pytest

from tests.contract.conftest import Server
from vpcnet.errors import WatchExpired
from vpcnet.kube.client import KubeClient
from vpcnet.kube.types import NodeWatchEvent, WatchEventType

ADDED, MODIFIED, DELETED = WatchEventType.ADDED, WatchEventType.MODIFIED, WatchEventType.DELETED


def create_node(kube: KubeClient) -> str:
    name = f"c-w-{uuid.uuid4().hex[:8]}"
    kube._json("POST", "/api/v1/nodes", body={"metadata": {"name": name}})
    return name


def changes_of(events: list[NodeWatchEvent], name: str) -> list[tuple[WatchEventType, str]]:
    return [(e.type, e.resource_version) for e in events
            if e.node is not None and e.node.name == name]


def test_a_watch_replays_every_change_since_the_list(kube: KubeClient) -> None:
    _, rv = kube.list_nodes()
    name = create_node(kube)
    kube.set_labels(name, {"vpcnet.io/w": "1"})
    kube._json("DELETE", f"/api/v1/nodes/{name}")
    with kube.watch_nodes(rv, timeout_seconds=2) as watch:
        events = list(watch)  # ends at the server's timeout
    seen = changes_of(events, name)
    assert [t for t, _ in seen] == [ADDED, MODIFIED, DELETED]
    versions = [int(v) for _, v in seen]
    assert versions == sorted(versions) and len(set(versions)) == 3
    assert all(int(v) > int(rv) for v in versions)
    modified = next(e for e in events if e.type is MODIFIED and e.node and e.node.name == name)
    assert modified.node is not None and modified.node.labels["vpcnet.io/w"] == "1"


def test_a_watch_streams_live_changes(kube: KubeClient, server: Server) -> None:
    _, rv = kube.list_nodes()
    got: queue.Queue[NodeWatchEvent] = queue.Queue()
    watch = kube.watch_nodes(rv, timeout_seconds=60)

    def read() -> None:
        for event in watch:
            got.put(event)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    writer = server.client()
    try:
        name = create_node(writer)
        while True:
            event = got.get(timeout=30)
            if event.node is not None and event.node.name == name:
                assert event.type is ADDED
                break
    finally:
        watch.close()
        reader.join(timeout=10)
        writer.close()
    assert not reader.is_alive()  # close() ends the iteration from another thread


def test_a_watch_from_an_expired_version_is_410_and_a_relist_recovers(
    server: Server,
) -> None:
    kube = server.client()
    _, rv = kube.list_nodes()
    name = create_node(kube)  # a change after rv: rv is behind the server's window
    server.expire_watch_history()
    try:
        with pytest.raises(WatchExpired), kube.watch_nodes(rv, timeout_seconds=5) as watch:
            list(watch)  # 410 either as the response or as the stream's ERROR event
        nodes, fresh = kube.list_nodes()  # the relist
        assert name in {n.name for n in nodes}
        kube.set_labels(name, {"vpcnet.io/after": "relist"})
        with kube.watch_nodes(fresh, timeout_seconds=2) as watch:
            seen = changes_of(list(watch), name)
        assert [t for t, _ in seen] == [MODIFIED]
    finally:
        kube._json("DELETE", f"/api/v1/nodes/{name}")
        kube.close()


def test_a_running_watch_ends_when_the_history_expires_and_its_resume_is_410(
    server: Server,
) -> None:
    """How a client meets 410 while it is watching. The apiserver ends the stream when its
    watch cache starts over (cleanly: the client then resumes from its last version and
    is answered 410); the emulator sends the 410 as an ERROR event on the stream. Either
    way the client's next step is the same: relist."""
    kube = server.client()
    _, rv = kube.list_nodes()
    ended: queue.Queue[str] = queue.Queue()
    watch = kube.watch_nodes(rv, timeout_seconds=120)

    def read() -> None:
        try:
            list(watch)
            ended.put("clean")
        except WatchExpired:
            ended.put("410")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    name = create_node(kube)
    try:
        server.expire_watch_history()
        how = ended.get(timeout=60)
        assert how == {"apiserver": "clean", "emulator": "410"}[server.name]
        with pytest.raises(WatchExpired), kube.watch_nodes(rv, timeout_seconds=5) as again:
            list(again)
    finally:
        watch.close()
        kube._json("DELETE", f"/api/v1/nodes/{name}")
        kube.close()
