"""The emulator's tables agree with the published Kubernetes OpenAPI schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vpcnet_sim.kube import codec, openapi, schema, validation
from vpcnet_sim.kube.schema import Fields, Strategy


@pytest.fixture(scope="module")
def definitions() -> dict[str, Any]:
    return openapi.load_definitions()


def _flatten(fields: Fields, path: str = "") -> set[tuple[str, str, str]]:
    out: set[tuple[str, str, str]] = set()
    for name, child in fields.children.items():
        at = f"{path}.{name}" if path else name
        if isinstance(child, Strategy):
            strategy = "merge,retainKeys" if child.retain_keys else "merge"
            out.add((at, strategy, child.merge_key or ""))
            out |= _flatten(child.items, at)
        else:
            out |= _flatten(child, at)
    return out


@pytest.mark.parametrize(("kind", "root"), list(openapi.ROOTS.items()))
def test_patch_strategies_match_openapi(kind: str, root: str, definitions: dict[str, Any]) -> None:
    published = openapi.merge_strategies(definitions, root, depth=12)
    assert _flatten(schema.for_kind(kind)) == published


def test_node_strategies() -> None:
    spec, status = schema.NODE.children["spec"], schema.NODE.children["status"]
    assert isinstance(spec, Fields) and isinstance(status, Fields)
    assert "taints" not in spec.children  # atomic: replaced as a whole
    assert status.children["conditions"] == Strategy("type")
    meta = schema.NODE.children["metadata"]
    assert isinstance(meta, Fields) and meta.children["finalizers"] == Strategy(None)


def test_node_taints_are_atomic_in_the_published_schema(definitions: dict[str, Any]) -> None:
    taints = definitions["io.k8s.api.core.v1.NodeSpec"]["properties"]["taints"]
    assert "x-kubernetes-patch-strategy" not in taints
    assert taints["x-kubernetes-list-type"] == "atomic"


def test_openapi_table_is_current(definitions: dict[str, Any]) -> None:
    committed = (Path(codec.__file__).parent / "openapi_table.py").read_text()
    assert committed == openapi.render_table_module(definitions), (
        "regenerate: python -m vpcnet_sim.kube.openapi > vpcnet_sim/kube/openapi_table.py"
    )


def test_decode_adds_go_zero_values_for_required_fields() -> None:
    node = {"status": {"nodeInfo": {"kubeletVersion": "v1"}, "conditions": [{"type": "Ready"}]},
            "spec": {"taints": [{"key": "k"}]}}
    codec.decode(node, "Node")
    assert node["status"]["nodeInfo"]["bootID"] == ""
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1"
    assert node["status"]["conditions"][0]["status"] == ""
    assert node["spec"]["taints"][0]["effect"] == ""


@pytest.mark.parametrize(("taints", "message"), [
    ([{"key": "a", "effect": "Bad"}],
     'spec.taints[0].effect: Unsupported value: "Bad": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'),
    ([{"key": "a", "effect": ""}], "spec.taints[0].effect: Required value"),
    ([{"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule"}], "spec.taints[1]: Duplicate value"),
    ([{"key": "bad key", "effect": "NoSchedule"}], "spec.taints[0].key: Invalid value"),
    ([{"key": "a", "value": "x" * 64, "effect": "NoSchedule"}], "spec.taints[0].value: Invalid value"),
])
def test_taint_validation(taints: list[dict[str, str]], message: str) -> None:
    errors = validation.taint_errors(taints)
    assert errors and errors[0].text().startswith(message)


def test_same_key_with_different_effects_is_valid() -> None:
    assert validation.taint_errors([{"key": "a", "effect": "NoSchedule"},
                                    {"key": "a", "effect": "NoExecute"}]) == []


@pytest.mark.parametrize(("labels", "ok"), [
    ({"vpcnet.io/instance-id": "i-0abc"}, True),
    ({"a": ""}, True),
    ({"-a": "x"}, False),
    ({"a": "x" * 64}, False),
    ({"Bad_Prefix.io/a": "x"}, False),
    ({"a": "bad value"}, False),
])
def test_label_validation(labels: dict[str, str], ok: bool) -> None:
    errors = validation.metadata_errors({"name": "n", "labels": labels}, namespaced=False)
    assert (errors == []) is ok


@pytest.mark.parametrize(("name", "ok"), [("ip-10-0-0-1.ec2.internal", True), ("Node1", False), ("", False)])
def test_name_validation(name: str, ok: bool) -> None:
    assert (validation.name_errors(name, "metadata.name") == []) is ok


def test_decode_normalizes_timestamps_like_go() -> None:
    lease = {"metadata": {"creationTimestamp": "2025-01-02T04:04:05.123+01:00"},
             "spec": {"renewTime": "2025-01-02T03:04:05.5+00:00", "acquireTime": None}}
    codec.decode(lease, "Lease")
    assert lease["metadata"]["creationTimestamp"] == "2025-01-02T03:04:05Z"  # Time: seconds
    assert lease["spec"]["renewTime"] == "2025-01-02T03:04:05.500000Z"  # MicroTime
    assert lease["spec"]["acquireTime"] is None
    node = {"spec": {"taints": [{"key": "k", "effect": "NoExecute", "timeAdded": "2025-01-02T03:04:05Z"}]}}
    codec.decode(node, "Node")
    assert node["spec"]["taints"][0]["timeAdded"] == "2025-01-02T03:04:05Z"


@pytest.mark.parametrize("value", ["yesterday", "2025-01-02T03:04:05", 5])
def test_decode_rejects_bad_timestamps(value: object) -> None:
    with pytest.raises(codec.DecodeError):
        codec.decode({"spec": {"renewTime": value}}, "Lease")
