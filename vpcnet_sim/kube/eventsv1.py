"""events.k8s.io/v1 <-> core/v1 Event conversion.

Both API versions serve one stored resource, as on a real cluster: an Event created
through either shows up in both lists. The store keeps the core/v1 shape.
"""

from __future__ import annotations

from typing import Any

# events.k8s.io/v1 field -> core/v1 field (identical names are not listed)
_RENAMED = {
    "regarding": "involvedObject",
    "note": "message",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "reportingController": "reportingComponent",
}
_BACK = {v: k for k, v in _RENAMED.items()}


def to_core(event: dict[str, Any]) -> dict[str, Any]:
    return {_RENAMED.get(k, k): v for k, v in event.items()}


def from_core(event: dict[str, Any]) -> dict[str, Any]:
    converted = {_BACK.get(k, k): v for k, v in event.items()}
    converted.setdefault("eventTime", None)  # required; Go encodes the zero MicroTime as null
    return converted
