"""Facts derived from the published Kubernetes OpenAPI schema (dev/test time only).

The emulator's table of required fields and patch strategies (``openapi_table.py``,
used by ``codec.py`` and ``schema.py``) is generated from the schema shipped by
``kubernetes-validate`` (a test dependency): ``python -m vpcnet_sim.kube.openapi``
regenerates it, and a unit test fails when the committed table is stale.
"""

from __future__ import annotations

import json
import pprint
from importlib import resources
from typing import Any

SCHEMA_VERSION = "1.37.0"

# served kind -> its OpenAPI definition
ROOTS = {
    "Node": "io.k8s.api.core.v1.Node",
    "Pod": "io.k8s.api.core.v1.Pod",
    "Namespace": "io.k8s.api.core.v1.Namespace",
    "Event": "io.k8s.api.core.v1.Event",
    "events.k8s.io/Event": "io.k8s.api.events.v1.Event",
    "Lease": "io.k8s.api.coordination.v1.Lease",
}

# Definitions Go encodes as a string or null, never as an object.
_SCALAR_REFS = {
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": None,
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": None,
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": 0,
    "io.k8s.apimachinery.pkg.api.resource.Quantity": "0",
}


_TIMES = {
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
}


def load_definitions(version: str = SCHEMA_VERSION) -> dict[str, Any]:
    base = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    data = json.loads(base.joinpath(f"v{version}-local", "_definitions.json").read_text())
    defs: dict[str, Any] = data.get("$defs") or data["definitions"]
    return defs


def _ref(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    for key in ("allOf", "anyOf", "oneOf"):
        for option in schema.get(key, []):
            ref = ref or option.get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


def _type(prop: dict[str, Any]) -> str:
    """The JSON type of a property (``["array", "null"]`` means a nullable array)."""
    kind = prop.get("type", "")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "")
    return str(kind)


def _shape(prop: dict[str, Any]) -> tuple[str | None, str]:
    """(definition the values refer to, 'obj' | 'list' | 'map')."""
    if _type(prop) == "array":
        return _ref(prop.get("items") or {}), "list"
    if _type(prop) == "object" and isinstance(prop.get("additionalProperties"), dict):
        return _ref(prop["additionalProperties"]), "map"
    return _ref(prop), "obj"


def _zero(prop: dict[str, Any]) -> Any:
    ref, shape = _shape(prop)
    if shape == "list":
        return []
    if shape == "map":
        return {}
    if ref is not None:
        return _SCALAR_REFS.get(ref, {})
    return {"string": "", "integer": 0, "number": 0, "boolean": False}.get(_type(prop), {})


def definition_table(defs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per definition reachable from ROOTS, what the emulator needs to know:

    - ``required``: required fields and their Go zero values;
    - ``merge``: fields with a strategic-merge strategy -> [strategy, merge key];
    - ``times``: timestamp fields -> 'Time' (seconds) or 'MicroTime' (microseconds);
    - ``children``: fields to descend into -> [definition, 'obj' | 'list' | 'map'].

    Only definitions that (transitively) carry any of these are kept.
    """
    table: dict[str, dict[str, Any]] = {}
    visiting: set[str] = set()

    def visit(name: str) -> bool:
        if name in table:
            return True
        if name in visiting or name in _SCALAR_REFS or name not in defs:
            return False
        visiting.add(name)
        definition = defs[name]
        props = definition.get("properties", {})
        required = {f: _zero(props.get(f, {})) for f in definition.get("required", [])}
        merge: dict[str, list[str]] = {}
        times: dict[str, str] = {}
        children: dict[str, list[str]] = {}
        for field, prop in sorted(props.items()):
            strategy = prop.get("x-kubernetes-patch-strategy", "")
            if "merge" in strategy.split(","):
                merge[field] = [strategy, prop.get("x-kubernetes-patch-merge-key", "")]
            ref, shape = _shape(prop)
            if ref in _TIMES and shape == "obj":
                times[field] = _TIMES[ref]
            elif ref and visit(ref):
                children[field] = [ref, shape]
        visiting.discard(name)
        if required or merge or times or children:
            table[name] = {"required": required, "merge": merge, "times": times, "children": children}
            return True
        return False

    for root in ROOTS.values():
        visit(root)
    return dict(sorted(table.items()))


def merge_strategies(defs: dict[str, Any], root: str, depth: int = 6) -> set[tuple[str, str, str]]:
    """(path, patch strategy, merge key) of every list with a merge strategy under root."""
    found: set[tuple[str, str, str]] = set()

    def visit(name: str, path: str, level: int) -> None:
        if level > depth or name not in defs:
            return
        for field, prop in defs[name].get("properties", {}).items():
            at = f"{path}.{field}" if path else field
            strategy = prop.get("x-kubernetes-patch-strategy", "")
            if "merge" in strategy.split(","):
                found.add((at, strategy, prop.get("x-kubernetes-patch-merge-key", "")))
            ref, _ = _shape(prop)
            if ref:
                visit(ref, at, level + 1)

    visit(root, "", 0)
    return found


def render_table_module(defs: dict[str, Any]) -> str:
    table = pprint.pformat(definition_table(defs), width=100, sort_dicts=False)
    return _TEMPLATE.format(version=SCHEMA_VERSION, roots=pprint.pformat(ROOTS, width=100),
                                 table=table)


_TEMPLATE = '''"""Required fields, patch strategies and nesting of the served kinds (GENERATED).

Regenerate with ``python -m vpcnet_sim.kube.openapi > vpcnet_sim/kube/openapi_table.py``
(Kubernetes {version} schema); a unit test fails when this table is stale.
"""

from typing import Any

ROOTS: dict[str, str] = {roots}

TABLE: dict[str, dict[str, Any]] = {table}
'''


if __name__ == "__main__":
    print(render_table_module(load_definitions()), end="")
