"""KubeClient against the Kubernetes emulator over HTTP (the real ``kubernetes`` client)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fixtures import watcher as fx
from vpcnet.errors import ConfigError, KubeConflict, NotFoundError, WatchExpired
from vpcnet.kube.client import KubeClient
from vpcnet.kube.client.api import MERGE_PATCH
from vpcnet.kube.types import LeaseSpec, Taint, WatchEventType
from vpcnet.settings import Settings
from vpcnet_sim.kube import KubeEmulator

# Fixtures of tests/fixtures/watcher.py used here.
kube_sim, broker, watcher_settings, kube = fx.kube_sim, fx.broker, fx.watcher_settings, fx.kube


def test_nodes_are_converted_at_the_edge(kube: KubeClient, kube_sim: KubeEmulator) -> None:
    kube_sim.add_node("n1", provider_id="aws:///us-west-2b/i-0123", labels={"role": "w"})
    kube_sim.add_node("bare", provider_id=None)
    nodes, rv = kube.list_nodes()
    assert rv and {n.name for n in nodes} == {"n1", "bare"}
    ref = kube.get_node("n1")
    assert ref is not None
    assert (ref.instance_id, ref.availability_zone, ref.labels["role"]) == (
        "i-0123",
        "us-west-2b",
        "w",
    )
    assert kube.get_node("missing") is None and kube.read_node("missing") is None
    with pytest.raises(ConfigError, match="bare"):
        kube.get_node("bare")


def test_taints_converge_and_keep_other_taints(kube: KubeClient, kube_sim: KubeEmulator) -> None:
    kube_sim.add_node("n1", taints=[{"key": "other", "value": "x", "effect": "NoExecute"}])
    assert kube.ensure_taint("n1", "vpcnet.io/not-ready", "NoSchedule") is True
    assert kube.ensure_taint("n1", "vpcnet.io/not-ready", "NoSchedule") is False
    node = kube.read_node("n1")
    assert node is not None
    assert set(node.taints) == {
        Taint("other", "NoExecute", "x"),
        Taint("vpcnet.io/not-ready", "NoSchedule"),
    }
    assert kube.remove_taint("n1", "vpcnet.io/not-ready") is True
    assert kube.remove_taint("n1", "vpcnet.io/not-ready") is False
    node = kube.read_node("n1")
    assert node is not None and node.taints == (Taint("other", "NoExecute", "x"),)
    assert kube.remove_taint("gone", "vpcnet.io/not-ready") is False  # idempotent on a missing node
    with pytest.raises(NotFoundError):
        kube.ensure_taint("gone", "vpcnet.io/not-ready", "NoSchedule")


def test_a_taint_patch_from_a_stale_read_is_rejected(
    kube: KubeClient, kube_sim: KubeEmulator
) -> None:
    """The premise of the retry loop: the server refuses a write based on an old version."""
    kube_sim.add_node("n1")
    stale = kube.read_node("n1")
    assert stale is not None
    kube.set_labels("n1", {"bump": "1"})
    patch = {"metadata": {"resourceVersion": stale.resource_version}, "spec": {"taints": []}}
    with pytest.raises(KubeConflict):
        kube._json("PATCH", "/api/v1/nodes/n1", body=patch, content_type=MERGE_PATCH)


def test_taint_ops_converge_under_concurrent_modification(
    kube: KubeClient, kube_sim: KubeEmulator
) -> None:
    """Eight writers add eight taints to one node at once while a ninth keeps relabelling
    it: every read-modify-write that lost a race got 409 and retried, so no taint is lost."""
    kube_sim.add_node("n1")
    stop = threading.Event()
    errors: list[BaseException] = []

    def relabel() -> None:
        i = 0
        # Hundreds of relabels a second: every taint writer loses races, yet on a loaded
        # 2-core machine an unpaced loop starved the writers past their retry budget.
        while not stop.wait(0.002):
            kube.set_labels("n1", {"churn": str(i)})
            i += 1

    def add(k: int) -> None:
        try:
            for _ in range(3):  # converging: repeats are no-ops
                kube.ensure_taint("n1", f"t{k}", "NoSchedule")
        except BaseException as e:  # surfaced below
            errors.append(e)

    churn = threading.Thread(target=relabel)
    churn.start()
    writers = [threading.Thread(target=add, args=(k,)) for k in range(8)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    stop.set()
    churn.join(10)
    assert not errors
    node = kube.read_node("n1")
    assert node is not None
    assert {t.key for t in node.taints} == {f"t{k}" for k in range(8)}
    # ... and concurrent removal of half of them leaves exactly the other half.
    removers = [
        threading.Thread(target=kube.remove_taint, args=("n1", f"t{k}")) for k in range(0, 8, 2)
    ]
    for r in removers:
        r.start()
    for r in removers:
        r.join(60)
    node = kube.read_node("n1")
    assert node is not None and {t.key for t in node.taints} == {"t1", "t3", "t5", "t7"}


def test_labels_and_annotations_merge_and_remove(kube: KubeClient, kube_sim: KubeEmulator) -> None:
    kube_sim.add_node("n1", labels={"keep": "1"}, annotations={"a": "1"})
    kube.set_labels("n1", {"vpcnet.io/instance-id": "i-0abc"})
    kube.set_annotations("n1", {"b": "2", "a": None})
    kube.set_status_summary("n1", {"phase": "ready", "ips": 29})
    node = kube.read_node("n1")
    assert node is not None
    assert node.labels["keep"] == "1" and node.labels["vpcnet.io/instance-id"] == "i-0abc"
    assert "a" not in node.annotations and node.annotations["b"] == "2"
    assert node.annotations["vpcnet.io/status"] == '{"ips": 29, "phase": "ready"}'


def test_events_aggregate_with_a_count(kube: KubeClient, kube_sim: KubeEmulator) -> None:
    kube_sim.add_node("n1")
    for _ in range(3):
        kube.emit_event("n1", "ProvisionFailed", "unknown instance type x1.weird", "Warning")
    kube.emit_event("n1", "Provisioned", "3 ENIs, 29 IPs")
    kube.emit_event("n2", "Provisioned", "3 ENIs, 29 IPs")
    events = {e.reason: e for e in kube.list_node_events("n1")}
    assert set(events) == {"ProvisionFailed", "Provisioned"}
    failed = events["ProvisionFailed"]
    assert (failed.count, failed.type, failed.component) == (3, "Warning", "test")
    assert failed.first_timestamp is not None and failed.last_timestamp is not None
    assert events["Provisioned"].count == 1 and events["Provisioned"].type == "Normal"
    # The emulator validated the Event object the real API would accept.
    raw = kube._json("GET", f"/api/v1/namespaces/default/events/{failed.name}")
    assert raw["involvedObject"] == {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "n1"}


def test_events_from_concurrent_emitters_count_every_occurrence(
    kube: KubeClient, kube_sim: KubeEmulator
) -> None:
    kube_sim.add_node("n1")
    threads = [
        threading.Thread(target=kube.emit_event, args=("n1", "R", "same", "Warning"))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    (event,) = kube.list_node_events("n1")
    assert event.count == 6


def test_watch_streams_changes_and_expires_after_compaction(
    kube: KubeClient, kube_sim: KubeEmulator
) -> None:
    kube_sim.add_node("n1")
    _, rv = kube.list_nodes()
    kube_sim.add_node("n2")
    kube.set_labels("n1", {"x": "1"})
    seen = []
    with kube.watch_nodes(rv, timeout_seconds=1) as watch:
        for ev in watch:
            if ev.node is not None:
                seen.append((ev.type, ev.node.name))
    assert seen == [(WatchEventType.ADDED, "n2"), (WatchEventType.MODIFIED, "n1")]
    kube_sim.compact()
    with pytest.raises(WatchExpired):
        for _ in kube.watch_nodes(rv, timeout_seconds=1):
            pass


def test_watch_close_unblocks_a_reader(kube: KubeClient, kube_sim: KubeEmulator) -> None:
    _, rv = kube.list_nodes()
    watch = kube.watch_nodes(rv, timeout_seconds=60)
    done = threading.Event()

    def read() -> None:
        for _ in watch:
            pass
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    watch.close()
    assert done.wait(10)


def test_lease_create_update_and_conflicts(kube: KubeClient) -> None:
    now = datetime.now(UTC)
    assert kube.get_lease("default", "l1") is None
    lease = kube.create_lease("default", "l1", LeaseSpec("a", 15, now, now, 0))
    with pytest.raises(KubeConflict):
        kube.create_lease("default", "l1", LeaseSpec("b", 15, now, now, 0))
    renewed = kube.update_lease(lease, LeaseSpec("a", 15, now, datetime.now(UTC), 0))
    with pytest.raises(KubeConflict):
        kube.update_lease(lease, LeaseSpec("b", 15, now, now, 1))  # stale resourceVersion
    got = kube.get_lease("default", "l1")
    assert got is not None and got.spec == renewed.spec and got.spec.holder_identity == "a"


def test_list_pods_by_node(kube: KubeClient, kube_sim: KubeEmulator) -> None:
    kube_sim.add_node("n1")
    kube_sim.add_pod("p1", node_name="n1")
    kube_sim.add_pod("p2", namespace="kube-system", node_name="n2")
    kube_sim.add_pod("p3")
    assert {p.name for p in kube.list_pods()} == {"p1", "p2", "p3"}
    assert [(p.namespace, p.name) for p in kube.list_pods("n1")] == [("default", "p1")]


def test_bad_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="kubeconfig"):
        KubeClient.from_settings(Settings(kubeconfig=str(tmp_path / "missing-kubeconfig")))
