"""Go zero values for required fields, as a real apiserver's JSON always carries them.

The apiserver decodes into Go structs and encodes them back, so a required field a
client left out comes back as ``""``, ``0``, ``false``, ``{}`` or ``null``. Clients
rely on it: the ``kubernetes`` Python client rejects a Node whose ``nodeInfo`` lacks
``bootID``. ``fill`` applies the same to the emulator's objects.
"""

from __future__ import annotations

from typing import Any

from vpcnet.sim.kube.openapi_table import ROOTS, TABLE


def _fill(obj: dict[str, Any], definition: str) -> None:
    spec = TABLE.get(definition)
    if spec is None:
        return
    for field, zero in spec["required"].items():
        if obj.get(field) is None:
            obj[field] = zero.copy() if isinstance(zero, dict | list) else zero
    for field, (child, shape) in spec["children"].items():
        value = obj.get(field)
        if shape == "obj" and isinstance(value, dict):
            _fill(value, child)
        elif shape == "list" and isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    _fill(item, child)
        elif shape == "map" and isinstance(value, dict):
            for item in value.values():
                if isinstance(item, dict):
                    _fill(item, child)


def fill(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """Add missing required fields to ``obj`` (in place) for ``kind`` (a ROOTS key)."""
    _fill(obj, ROOTS[kind])
    return obj
