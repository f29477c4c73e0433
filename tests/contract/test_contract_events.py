"""core/v1 Events as vpcnet records them: one object per (node, reason, type, message),
created once and then aggregated by a merge patch of count and lastTimestamp; read back
by field selector on the involved Node."""

from __future__ import annotations

import uuid

from vpcnet.kube.client import KubeClient
from vpcnet.kube.types import EventType


def test_a_repeated_event_is_one_object_with_a_count(kube: KubeClient, node: str) -> None:
    kube.emit_event(node, "Provisioned", "3 ENIs, 27 IPs")
    kube.emit_event(node, "Provisioned", "3 ENIs, 27 IPs")
    kube.emit_event(node, "Provisioned", "3 ENIs, 27 IPs")
    kube.emit_event(node, "ProvisionFailed", "quota", EventType.WARNING)
    events = kube.list_node_events(node)
    by_reason = {e.reason: e for e in events}
    assert sorted(by_reason) == ["ProvisionFailed", "Provisioned"]
    assert len(events) == 2
    ok = by_reason["Provisioned"]
    assert ok.count == 3 and ok.type == "Normal" and ok.component == "contract"
    assert ok.first_timestamp is not None and ok.last_timestamp is not None
    assert ok.last_timestamp >= ok.first_timestamp
    failed = by_reason["ProvisionFailed"]
    assert failed.count == 1 and failed.type == "Warning" and failed.message == "quota"
    raw = kube._json("GET", f"/api/v1/namespaces/default/events/{ok.name}")
    assert raw["involvedObject"] == {"apiVersion": "v1", "kind": "Node", "name": node,
                                     "uid": node}


def test_events_are_listed_per_node(kube: KubeClient, node: str) -> None:
    other = f"c-other-{uuid.uuid4().hex[:8]}"  # Events need no Node object to exist
    kube.emit_event(other, "Released", "gone")
    kube.emit_event(node, "Ready", "agent ready")
    assert [e.reason for e in kube.list_node_events(node)] == ["Ready"]
    assert [e.reason for e in kube.list_node_events(other)] == ["Released"]


def test_a_long_message_is_cut_to_1024_characters(kube: KubeClient, node: str) -> None:
    kube.emit_event(node, "Long", "x" * 5000)
    (event,) = kube.list_node_events(node)
    assert event.message == "x" * 1024
