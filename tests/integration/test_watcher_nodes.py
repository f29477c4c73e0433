"""The watcher in-process against the Kubernetes emulator, real Redis and the broker queue."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import redis
from kubernetes import client as k8s

from tests.fixtures import watcher as fx
from tests.fixtures.watcher import QueuedTask, queued, tasks_named, wait_for
from vpcnet.kube.client import KubeClient
from vpcnet.settings import Settings
from vpcnet.state.keys import ClusterKeys
from vpcnet.tasknames import NODE_READY, PROVISION_NODE, RELEASE_NODE
from vpcnet.watcher.loop import Watcher
from vpcnet.wellknown import INSTANCE_ID_LABEL, NOT_READY_TAINT, STATUS_ANNOTATION
from vpcnet_sim.kube import KubeEmulator
from vpcnet_sim.kube import resources as kube_resources

# Fixtures of tests/fixtures/watcher.py used here.
kube_sim, broker, watcher_settings, kube = fx.kube_sim, fx.broker, fx.watcher_settings, fx.kube

StartWatcher = Callable[..., Watcher]


@pytest.fixture
def start_watcher(watcher_settings: Settings) -> Iterator[StartWatcher]:
    started: list[Watcher] = []

    def start(settings: Settings | None = None) -> Watcher:
        w = Watcher.from_settings(settings or watcher_settings)
        w.start()
        started.append(w)
        wait_for(lambda: w.stats.resyncs >= 1, what="the watcher's first pass as leader")
        return w

    yield start
    for w in started:
        w.stop()
        w.close()


@pytest.fixture
def state(watcher_settings: Settings, redis_client: redis.Redis[bytes]) -> ClusterKeys:
    return ClusterKeys(watcher_settings.cluster_name)


def settle(w: Watcher, kube_sim: KubeEmulator) -> None:
    """Wait until the watcher has handled every change made so far, its own included."""
    target = kube_sim.resource_version
    wait_for(
        lambda: w.stats.last_resource_version and int(w.stats.last_resource_version) >= target,
        timeout=60,
        what=f"the watcher to reach resourceVersion {target}",
    )


def provisions(broker: redis.Redis[bytes]) -> list[list[str]]:
    return [t.args for t in tasks_named(broker, PROVISION_NODE)]


def test_new_node_is_tainted_labelled_and_provisioned_once(
    start_watcher: StartWatcher,
    kube_sim: KubeEmulator,
    kube: KubeClient,
    broker: redis.Redis[bytes],
) -> None:
    w = start_watcher()
    kube_sim.add_node("n1", provider_id="aws:///us-east-1c/i-0aaa", instance_type="m5.large")
    wait_for(lambda: provisions(broker), what="a provision task")
    settle(w, kube_sim)
    node = kube.read_node("n1")
    assert node is not None
    assert node.has_taint(NOT_READY_TAINT, "NoSchedule")
    assert node.labels[INSTANCE_ID_LABEL] == "i-0aaa"
    assert queued(broker) == [
        QueuedTask(PROVISION_NODE, ["n1", "i-0aaa", "us-east-1c"], queued(broker)[0].origin)
    ]


def test_a_burst_of_200_updates_enqueues_one_task(
    start_watcher: StartWatcher,
    kube_sim: KubeEmulator,
    kube: KubeClient,
    broker: redis.Redis[bytes],
) -> None:
    w = start_watcher()
    kube_sim.add_node("n1", provider_id="aws:///us-east-1a/i-0bbb")

    def churn(start: int) -> None:
        for i in range(start, 200, 4):
            # Labels count for provisioning (profiles select by label): each is a change.
            kube.set_labels("n1", {"churn": str(i)})

    writers = [threading.Thread(target=churn, args=(k,)) for k in range(4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join(120)
    settle(w, kube_sim)
    assert w.stats.events >= 200
    assert provisions(broker) == [["n1", "i-0bbb", "us-east-1a"]]
    assert w.stats.deduplicated[PROVISION_NODE] >= 1  # the changes were seen, and folded


def test_a_change_inside_the_window_is_enqueued_once_when_it_ends(
    start_watcher: StartWatcher,
    watcher_settings: Settings,
    kube_sim: KubeEmulator,
    kube: KubeClient,
    broker: redis.Redis[bytes],
) -> None:
    w = start_watcher(replace(watcher_settings, watcher_dedup_seconds=1.0))
    kube_sim.add_node("n1", provider_id="aws:///us-east-1a/i-0ccc")
    wait_for(lambda: provisions(broker), what="the first provision")
    for mode in ("warm", "prefix", "warm"):
        kube.set_annotations("n1", {"vpcnet.io/mode": mode})
    settle(w, kube_sim)
    wait_for(lambda: len(provisions(broker)) == 2, what="the trailing provision")
    assert provisions(broker) == [["n1", "i-0ccc", "us-east-1a"]] * 2


def test_deleted_node_is_released(
    start_watcher: StartWatcher, kube_sim: KubeEmulator, broker: redis.Redis[bytes]
) -> None:
    w = start_watcher()
    kube_sim.add_node("n1", provider_id="aws:///us-east-1a/i-0ddd")
    wait_for(lambda: provisions(broker), what="a provision task")
    k8s.CoreV1Api(kube_sim.api_client()).delete_node("n1")
    wait_for(lambda: tasks_named(broker, RELEASE_NODE), what="a release task")
    settle(w, kube_sim)
    assert [t.args for t in tasks_named(broker, RELEASE_NODE)] == [["n1", "i-0ddd"]]


def test_the_watcher_reaches_a_version_moved_by_another_kind_through_bookmarks(
    start_watcher: StartWatcher, kube_sim: KubeEmulator, kube: KubeClient, broker: redis.Redis[bytes]
) -> None:
    """The resourceVersion also moves for Events and Leases, which a node watch never
    sends: only a BOOKMARK (every 1 s in the fixture) tells the watcher it has seen every
    change up to it. Before, bookmarks were dropped and ``settle`` could wait forever
    whenever the watcher's own Lease renewal came last (a flake in CI under load)."""
    w = start_watcher()
    kube_sim.add_node("n1", provider_id="aws:///us-east-1a/i-0eee")
    wait_for(lambda: provisions(broker), what="a provision task")
    settle(w, kube_sim)
    events = w.stats.events
    kube.emit_event("n1", "Test", "moves the resourceVersion, changes no node")
    settle(w, kube_sim)
    assert w.stats.events == events  # a bookmark is not a node event


def test_changes_hidden_by_410_gone_are_caught_by_the_relist(
    start_watcher: StartWatcher, kube_sim: KubeEmulator, broker: redis.Redis[bytes]
) -> None:
    w = start_watcher()
    kube_sim.add_node("old", provider_id="aws:///us-east-1a/i-0001")
    wait_for(lambda: provisions(broker), what="the first provision")
    settle(w, kube_sim)
    lists = w.stats.lists
    # Atomically (the store's lock): forget the history, add one node, delete another.
    # The open watch can only answer 410; what happened is seen only by relisting.
    with kube_sim.store.lock:
        kube_sim.compact()
        kube_sim.add_node("new", provider_id="aws:///us-east-1b/i-0002")
        kube_sim.registry.delete(kube_resources.NODES, None, "old")
    wait_for(lambda: w.stats.lists > lists, what="a relist")
    wait_for(
        lambda: tasks_named(broker, RELEASE_NODE), what="the release of the node deleted unseen"
    )
    assert provisions(broker) == [["old", "i-0001", "us-east-1a"], ["new", "i-0002", "us-east-1b"]]
    assert [t.args for t in tasks_named(broker, RELEASE_NODE)] == [["old", "i-0001"]]


def test_nodes_without_a_usable_provider_id_get_a_warning_and_nothing_else(
    start_watcher: StartWatcher,
    kube_sim: KubeEmulator,
    kube: KubeClient,
    broker: redis.Redis[bytes],
) -> None:
    w = start_watcher()
    kube_sim.add_node("bare", provider_id=None)
    kube_sim.add_node("gce", provider_id="gce://project/us-central1-a/vm-1")
    wait_for(lambda: w.stats.warnings >= 2, what="two warnings")
    kube.set_labels("bare", {"churn": "1"})  # a later update does not repeat the warning
    settle(w, kube_sim)
    for name, reason in (("bare", "MissingProviderID"), ("gce", "InvalidProviderID")):
        (event,) = kube.list_node_events(name)
        assert (event.reason, event.type, event.count) == (reason, "Warning", 1)
        node = kube.read_node(name)
        assert node is not None and not node.taints and INSTANCE_ID_LABEL not in node.labels
    assert "gce://project/us-central1-a/vm-1" in kube.list_node_events("gce")[0].message
    assert queued(broker) == []


def test_agent_ready_message_enqueues_node_ready(
    start_watcher: StartWatcher,
    kube_sim: KubeEmulator,
    redis_client: redis.Redis[bytes],
    state: ClusterKeys,
    broker: redis.Redis[bytes],
) -> None:
    w = start_watcher()
    kube_sim.add_node("n1", provider_id="aws:///us-east-1a/i-0eee")
    wait_for(lambda: provisions(broker), what="a provision task")
    settle(w, kube_sim)
    # What provision_node and the agent write, then the agent's announcement.
    redis_client.hset(
        state.node("n1").node, mapping={"instance_id": "i-0eee", "phase": "provisioned"}
    )
    redis_client.hset(state.node("n1").agent, mapping={"ready": "1", "generation": "1"})
    redis_client.publish(state.agent_ready_channel, "n1")
    wait_for(lambda: tasks_named(broker, NODE_READY), what="a node_ready task")
    redis_client.publish(state.agent_ready_channel, "n1")  # a repeat is deduplicated
    wait_for(lambda: w.stats.deduplicated[NODE_READY] >= 1, what="the repeat to be folded")
    assert [t.args for t in tasks_named(broker, NODE_READY)] == [["n1"]]


def test_startup_catches_up_on_ready_agents_and_orphaned_state(
    start_watcher: StartWatcher,
    kube_sim: KubeEmulator,
    kube: KubeClient,
    redis_client: redis.Redis[bytes],
    state: ClusterKeys,
    broker: redis.Redis[bytes],
) -> None:
    taint = [{"key": NOT_READY_TAINT, "effect": "NoSchedule"}]
    # Ready agent, taint still on (its message was published while no watcher ran).
    kube_sim.add_node("pending", provider_id="aws:///us-east-1a/i-0f01", taints=taint)
    redis_client.hset(
        state.node("pending").node, mapping={"instance_id": "i-0f01", "phase": "provisioned"}
    )
    redis_client.hset(state.node("pending").agent, mapping={"ready": "1"})
    # Fully ready node: a new leader trusts Redis and leaves it alone.
    kube_sim.add_node(
        "done", provider_id="aws:///us-east-1a/i-0f02", labels={INSTANCE_ID_LABEL: "i-0f02"}
    )
    redis_client.hset(state.node("done").node, mapping={"instance_id": "i-0f02", "phase": "ready"})
    redis_client.hset(state.node("done").agent, mapping={"ready": "1"})
    # vpcnet state of a node deleted while no watcher was running.
    redis_client.sadd(state.nodes, "pending", "done", "ghost")
    redis_client.hset(state.node("ghost").node, mapping={"instance_id": "i-0f03", "phase": "ready"})

    w = start_watcher()
    settle(w, kube_sim)
    assert [t.args for t in tasks_named(broker, NODE_READY)] == [["pending"]]
    assert [t.args for t in tasks_named(broker, RELEASE_NODE)] == [["ghost", "i-0f03"]]
    assert provisions(broker) == [["pending", "i-0f01", "us-east-1a"]]
    done = kube.read_node("done")
    assert done is not None and not done.taints


def test_status_annotation_follows_vpcnet_state(
    start_watcher: StartWatcher,
    kube_sim: KubeEmulator,
    kube: KubeClient,
    redis_client: redis.Redis[bytes],
    state: ClusterKeys,
) -> None:
    w = start_watcher()
    kube_sim.add_node("n1", provider_id="aws:///us-east-1a/i-0a11")
    settle(w, kube_sim)
    keys = state.node("n1")

    def status() -> dict[str, object] | None:
        node = kube.read_node("n1")
        raw = node.annotations.get(STATUS_ANNOTATION) if node else None
        return json.loads(raw) if raw else None

    # What provision_node writes, announced on the node's changed channel.
    redis_client.hset(
        keys.node, mapping={"instance_id": "i-0a11", "phase": "provisioned", "generation": "1"}
    )
    redis_client.publish(keys.changed_channel, "1")
    first = wait_for(
        lambda: (s := status()) and s["phase"] == "provisioned" and s, what="the annotation"
    )
    assert first["instanceId"] == "i-0a11" and first["agentReady"] is False
    # A change nobody announces (a plain field write) shows up with the next node event.
    redis_client.hset(
        keys.node, mapping={"phase": "error", "error": "UnknownInstanceType: x1.weird"}
    )
    kube.set_labels("n1", {"poke": "1"})
    failed = wait_for(
        lambda: (s := status()) and s["phase"] == "error" and s, what="the error summary"
    )
    assert failed["error"] == "UnknownInstanceType: x1.weird"
    # Another node event makes the watcher compare again: same view, so no write. (The
    # watcher counts a write after its patch returns: wait for both writes to be counted.)
    wait_for(lambda: w.stats.summaries_written >= 2, what="both writes counted")
    written, checks = w.stats.summaries_written, w.stats.summary_checks
    kube.set_labels("n1", {"poke": "2"})
    wait_for(lambda: w.stats.summary_checks > checks, what="another comparison")
    assert w.stats.summaries_written == written
