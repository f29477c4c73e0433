"""The emulator's patch formats: RFC 7386, RFC 6902 and Kubernetes strategic merge."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpcnet_sim.kube import schema
from vpcnet_sim.kube.patch import (
    MalformedPatch,
    PatchFailed,
    json_equal,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)

# RFC 7386 appendix A, verbatim cases
RFC7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386)
def test_merge_patch_rfc7386_examples(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def test_merge_patch_does_not_mutate_inputs() -> None:
    target = {"a": {"b": 1}, "l": [1]}
    patch = {"a": {"c": 2}, "l": [2]}
    result = merge_patch(target, patch)
    result["a"]["x"] = 1
    result["l"].append(3)
    assert target == {"a": {"b": 1}, "l": [1]}
    assert patch == {"a": {"c": 2}, "l": [2]}


# --- RFC 6902 ---------------------------------------------------------------------


@pytest.mark.parametrize(("doc", "ops", "expected"), [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"foo": "bar", "baz": "qux"}),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": "x"}], {"foo": ["bar", "x"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ({"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ({"a": {"b": 1}}, [{"op": "copy", "from": "/a", "path": "/c"}], {"a": {"b": 1}, "c": {"b": 1}}),
    ({"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10},
                          {"op": "replace", "path": "/~1", "value": 1}], {"/": 1, "~1": 10}),
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ({"foo": 1}, [{"op": "replace", "path": "", "value": {"x": 2}}], {"x": 2}),
])
def test_json_patch_rfc6902_examples(doc: Any, ops: Any, expected: Any) -> None:
    assert json_patch(doc, ops) == expected


@pytest.mark.parametrize(("doc", "ops"), [
    ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}]),
    ({"a": 1}, [{"op": "test", "path": "/a", "value": True}]),  # 1 is not true in JSON
    ({"a": True}, [{"op": "test", "path": "/a", "value": 1}]),
    ({"a": "1"}, [{"op": "test", "path": "/a", "value": 1}]),
    ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}]),  # missing parent
    ({"foo": "bar"}, [{"op": "remove", "path": "/nope"}]),
    ({"foo": "bar"}, [{"op": "replace", "path": "/nope", "value": 1}]),
    ({"foo": [1]}, [{"op": "add", "path": "/foo/5", "value": 1}]),
    ({"foo": [1]}, [{"op": "add", "path": "/foo/01", "value": 1}]),
    ({"foo": {"a": 1}}, [{"op": "move", "from": "/foo", "path": "/foo/b"}]),
    ({"foo": 1}, [{"op": "frobnicate", "path": "/foo"}]),
    ({"foo": 1}, [{"op": "add", "path": "/foo"}]),
])
def test_json_patch_failures(doc: Any, ops: Any) -> None:
    with pytest.raises(PatchFailed):
        json_patch(doc, ops)


def test_json_patch_is_atomic() -> None:
    doc = {"a": 1}
    with pytest.raises(PatchFailed):
        json_patch(doc, [{"op": "replace", "path": "/a", "value": 2},
                         {"op": "test", "path": "/a", "value": 1}])
    assert doc == {"a": 1}


@pytest.mark.parametrize("ops", [{"op": "add"}, [1, 2], "x"])
def test_json_patch_rejects_documents_that_are_not_operation_lists(ops: Any) -> None:
    with pytest.raises(MalformedPatch):
        json_patch({}, ops)


# --- strategic merge patch --------------------------------------------------------------

NODE: dict[str, Any] = {
    "metadata": {"name": "n1", "labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
    "spec": {"providerID": "aws:///us-east-1a/i-1",
             "taints": [{"key": "t1", "effect": "NoSchedule"}, {"key": "t2", "effect": "NoExecute"}]},
    "status": {"conditions": [{"type": "Ready", "status": "True"},
                              {"type": "MemoryPressure", "status": "False"}]},
}


def smp(patch: dict[str, Any], doc: dict[str, Any] = NODE) -> dict[str, Any]:
    result: dict[str, Any] = strategic_merge_patch(doc, patch, schema.NODE)
    return result


def test_smp_merges_labels_and_null_deletes() -> None:
    out = smp({"metadata": {"labels": {"c": "3", "a": None}}})
    assert out["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert NODE["metadata"]["labels"] == {"a": "1", "b": "2"}  # input untouched


def test_smp_replaces_taints_because_node_spec_taints_is_atomic() -> None:
    out = smp({"spec": {"taints": [{"key": "t3", "effect": "NoSchedule"}]}})
    assert out["spec"]["taints"] == [{"key": "t3", "effect": "NoSchedule"}]
    assert out["spec"]["providerID"] == "aws:///us-east-1a/i-1"


def test_smp_merges_conditions_by_type() -> None:
    out = smp({"status": {"conditions": [{"type": "Ready", "status": "False"},
                                         {"type": "DiskPressure", "status": "False"}]}})
    assert out["status"]["conditions"] == [
        {"type": "Ready", "status": "False"},
        {"type": "MemoryPressure", "status": "False"},
        {"type": "DiskPressure", "status": "False"},
    ]


def test_smp_delete_directive_in_merged_list() -> None:
    out = smp({"status": {"conditions": [{"type": "MemoryPressure", "$patch": "delete"}]}})
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "True"}]


def test_smp_replace_directive_on_list_and_map() -> None:
    out = smp({"status": {"conditions": [{"type": "X", "status": "True"}, {"$patch": "replace"}]}})
    assert out["status"]["conditions"] == [{"type": "X", "status": "True"}]
    out = smp({"metadata": {"labels": {"z": "9", "$patch": "replace"}}})
    assert out["metadata"]["labels"] == {"z": "9"}


def test_smp_delete_directive_on_a_map_removes_it() -> None:
    assert "status" not in smp({"status": {"$patch": "delete"}})


def test_smp_finalizers_merge_as_a_set_and_delete_from_primitive_list() -> None:
    out = smp({"metadata": {"finalizers": ["y", "z"]}})
    assert out["metadata"]["finalizers"] == ["x", "y", "z"]
    out = smp({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}})
    assert out["metadata"]["finalizers"] == ["y"]


def test_smp_set_element_order() -> None:
    out = smp({"status": {"$setElementOrder/conditions": [{"type": "MemoryPressure"}, {"type": "Ready"}],
                          "conditions": [{"type": "Ready", "status": "Unknown"}]}})
    assert [c["type"] for c in out["status"]["conditions"]] == ["MemoryPressure", "Ready"]
    assert out["status"]["conditions"][1]["status"] == "Unknown"


def test_smp_retain_keys() -> None:
    pod = {"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}
    out = strategic_merge_patch(
        pod, {"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/x"}, "$retainKeys": ["name", "hostPath"]}]}},
        schema.POD,
    )
    assert out["spec"]["volumes"] == [{"name": "v", "hostPath": {"path": "/x"}}]


def test_smp_pod_containers_merge_by_name_and_env_by_name() -> None:
    pod = {"spec": {"containers": [{"name": "a", "image": "i1", "env": [{"name": "X", "value": "1"}]}]}}
    out = strategic_merge_patch(
        pod, {"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]},
                                      {"name": "b", "image": "i2"}]}}, schema.POD)
    assert out["spec"]["containers"] == [
        {"name": "a", "image": "i1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
        {"name": "b", "image": "i2"},
    ]


@pytest.mark.parametrize("patch", [
    {"status": {"conditions": [{"status": "True"}]}},  # no merge key
    {"status": {"conditions": ["Ready"]}},
    {"metadata": {"$patch": "explode"}},
])
def test_smp_malformed(patch: dict[str, Any]) -> None:
    with pytest.raises(MalformedPatch):
        smp(patch)


# --- properties -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=4), json_values, max_size=5)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


@settings(max_examples=60, deadline=None)
@given(json_objects, json_objects)
def test_merge_patch_result_contains_every_patched_non_null_leaf(target: dict[str, Any], patch: dict[str, Any]) -> None:
    result = merge_patch(target, patch)
    for key, value in patch.items():
        if value is None:
            assert key not in result
        elif not isinstance(value, dict):
            assert json_equal(result[key], value)


@settings(max_examples=60, deadline=None)
@given(json_objects)
def test_merge_patch_with_itself_is_idempotent_without_nulls(doc: dict[str, Any]) -> None:
    clean = _drop_nulls(doc)
    assert json_equal(merge_patch(clean, clean), clean)


@settings(max_examples=60, deadline=None)
@given(json_objects)
def test_json_patch_test_of_every_top_level_member_passes(doc: dict[str, Any]) -> None:
    ops = [{"op": "test", "path": "/" + k.replace("~", "~0").replace("/", "~1"), "value": v}
           for k, v in doc.items()]
    assert json_equal(json_patch(doc, ops), doc)
