"""What decoding into Go structs and encoding back does to a client's JSON.

The apiserver never stores the client's bytes: it decodes into typed structs and
encodes those. Two effects clients can see, both driven by the generated
``openapi_table``:

- required fields a client left out come back with their Go zero value (``""``,
  ``0``, ``false``, ``{}``, ``null``). Clients rely on it: the ``kubernetes`` Python
  client rejects a Node whose ``nodeInfo`` lacks ``bootID``;
- timestamps are re-encoded in UTC: ``metav1.Time`` with second precision
  (``2025-01-02T03:04:05Z``), ``metav1.MicroTime`` with microseconds. A timestamp that
  does not parse is a decode error (400).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from vpcnet_sim.kube.openapi_table import ROOTS, TABLE


class DecodeError(ValueError):
    """The object cannot be decoded into its type (the apiserver answers 400)."""


def format_time(value: Any, kind: str, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DecodeError(f"{path}: expected an RFC 3339 timestamp, got {value!r}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as e:
        raise DecodeError(f'parsing time "{value}" at {path}: {e}') from e
    if parsed.tzinfo is None:
        raise DecodeError(f'parsing time "{value}" at {path}: missing time zone')
    utc = parsed.astimezone(dt.UTC)
    if kind == "MicroTime":
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def _decode(obj: dict[str, Any], definition: str, path: str) -> None:
    spec = TABLE.get(definition)
    if spec is None:
        return
    for field, zero in spec["required"].items():
        if obj.get(field) is None:
            obj[field] = zero.copy() if isinstance(zero, dict | list) else zero
    for field, kind in spec["times"].items():
        if field in obj:
            obj[field] = format_time(obj[field], kind, f"{path}{field}")
    for field, (child, shape) in spec["children"].items():
        value = obj.get(field)
        at = f"{path}{field}"
        if shape == "obj" and isinstance(value, dict):
            _decode(value, child, at + ".")
        elif shape == "list" and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    _decode(item, child, f"{at}[{i}].")
        elif shape == "map" and isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, dict):
                    _decode(item, child, f"{at}[{key}].")


def decode(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """Normalize ``obj`` in place as a decode/encode round trip would; ``kind`` is a ROOTS key."""
    _decode(obj, ROOTS[kind], "")
    return obj
