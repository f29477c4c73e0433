"""Comparing the Helm chart's objects with the kustomize base's, field by field."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

Key = tuple[str, str, str]  # kind, namespace ("" if cluster-scoped), name

# The only intended difference from the kustomize base: the labels Helm's conventions add
# to every object's metadata (never to selectors or pod templates, which stay the base's).
HELM_LABELS = ("app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "helm.sh/chart")


def key(doc: dict[str, Any]) -> Key:
    meta = doc["metadata"]
    return (doc["kind"], meta.get("namespace", ""), meta["name"])


def by_key(docs: tuple[dict[str, Any], ...]) -> dict[Key, dict[str, Any]]:
    out: dict[Key, dict[str, Any]] = {}
    for doc in docs:
        assert key(doc) not in out, f"{key(doc)} rendered twice"
        out[key(doc)] = doc
    return out


def without_helm_labels(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    labels = doc["metadata"].get("labels", {})
    for label in HELM_LABELS:
        labels.pop(label, None)
    return doc


def differences(
    expected: Any, actual: Any, path: str = "", *, extra_ok: bool = False
) -> Iterator[str]:
    """Each place where ``actual`` differs from ``expected``, as ``path: ...``. With
    ``extra_ok``, keys only ``actual`` has are allowed (an apiserver's defaults, status,
    metadata); list lengths and every expected value must still match exactly."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k in sorted(set(expected) | set(actual), key=str):
            if k not in actual:
                yield f"{path}.{k}: missing (expected {expected[k]!r})"
            elif k not in expected:
                if not extra_ok:
                    yield f"{path}.{k}: unexpected ({actual[k]!r})"
            else:
                yield from differences(expected[k], actual[k], f"{path}.{k}", extra_ok=extra_ok)
    elif isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            yield from differences(e, a, f"{path}[{i}]", extra_ok=extra_ok)
    elif expected != actual or type(expected) is not type(actual):
        yield f"{path}: expected {expected!r}, got {actual!r}"
