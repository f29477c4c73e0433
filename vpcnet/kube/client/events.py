"""core/v1 Events about nodes, aggregated by name like kubelet's recorder."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from vpcnet.errors import KubeConflict, NotFoundError
from vpcnet.kube.client.api import MERGE_PATCH, KubeApi
from vpcnet.kube.client.conflicts import CONFLICT_RETRIES, conflict_pause
from vpcnet.kube.types import EventType, KubeEvent, format_time
from vpcnet.wellknown import KEY_PREFIX

_MAX_MESSAGE = 1024  # the apiserver truncates Event messages beyond this anyway


class EventsApi(KubeApi):
    def emit_event(
        self, node_name: str, reason: str, message: str, type: str = EventType.NORMAL
    ) -> None:
        """Record a core/v1 Event on the node, aggregated like kubelet's recorder.

        The Event's name is derived from (node, reason, type, message), so a repeat of the
        same event, from any replica or worker, bumps ``count`` and ``lastTimestamp`` of
        the one Event instead of creating a new object per occurrence.
        """
        message = message[:_MAX_MESSAGE]
        digest = hashlib.sha256(f"{type}\0{reason}\0{message}".encode()).hexdigest()[:16]
        name = f"{node_name}.vpcnet.{digest}"
        ns = self.event_namespace
        now = format_time(datetime.now(UTC))
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            # kubelet's convention (and what `kubectl describe node` matches on): a Node's
            # event reference uses the node name as its UID.
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Node",
                "name": node_name,
                "uid": node_name,
            },
            "reason": reason,
            "message": message,
            "type": str(type),
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": self.component, "host": self._host},
            "reportingComponent": f"{KEY_PREFIX}{self.component}",
            "reportingInstance": self._host,
        }
        path = f"/api/v1/namespaces/{ns}/events"
        for attempt in range(CONFLICT_RETRIES):
            try:
                self._json("POST", path, body=body)
                return
            except KubeConflict:
                pass  # it exists: aggregate into it
            try:
                existing = self._json("GET", f"{path}/{name}")
            except NotFoundError:
                continue  # expired between our create and read: create again
            meta = existing.get("metadata") or {}
            patch = {
                "metadata": {"resourceVersion": str(meta.get("resourceVersion", ""))},
                "count": int(existing.get("count") or 1) + 1,
                "lastTimestamp": now,
            }
            try:
                self._json("PATCH", f"{path}/{name}", body=patch, content_type=MERGE_PATCH)
                return
            except KubeConflict:
                conflict_pause(attempt)
            except NotFoundError:
                continue
        raise KubeConflict(409, "Conflict", f"event {name}: kept changing under us")

    def list_node_events(self, node_name: str) -> list[KubeEvent]:
        """Events about the node in the event namespace, oldest first."""
        query = [("fieldSelector", f"involvedObject.kind=Node,involvedObject.name={node_name}")]
        data = self._json("GET", f"/api/v1/namespaces/{self.event_namespace}/events", query=query)
        events = []
        for item in data.get("items") or ():
            ref = item.get("involvedObject") or {}
            # Filter here too: a server may ignore field selectors it does not index.
            if ref.get("kind") == "Node" and ref.get("name") == node_name:
                events.append(KubeEvent.from_api(item))
        events.sort(key=lambda e: (e.last_timestamp or datetime.min.replace(tzinfo=UTC), e.name))
        return events
