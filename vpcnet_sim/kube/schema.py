"""Strategic-merge-patch strategies of the served kinds, from the OpenAPI schema.

Built from the generated ``openapi_table`` (the ``x-kubernetes-patch-strategy`` and
``-merge-key`` of k8s.io/api). A field without a merge strategy is replaced as a whole
when it is a list -- ``NodeSpec.taints`` is atomic, so a patch carrying taints replaces
all of them -- and merged key by key when it is a map (labels, annotations).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from vpcnet_sim.kube.openapi_table import ROOTS, TABLE


@dataclass(frozen=True)
class Fields:
    """Schema of one object: the fields that need more than the default strategy."""

    children: Mapping[str, Strategy | Fields] = field(default_factory=dict)


@dataclass(frozen=True)
class Strategy:
    """A list merged by ``merge_key`` (maps) or as a set (primitives, merge_key None)."""

    merge_key: str | None = None
    retain_keys: bool = False
    items: Fields = field(default_factory=Fields)


@cache
def for_definition(name: str) -> Fields:
    spec = TABLE.get(name)
    if spec is None:
        return Fields()
    children: dict[str, Strategy | Fields] = {}
    for name_, (child, _shape) in spec["children"].items():
        children[name_] = for_definition(child)
    for name_, (strategy, merge_key) in spec["merge"].items():
        items = children.get(name_)
        children[name_] = Strategy(
            merge_key or None, "retainKeys" in strategy.split(","),
            items if isinstance(items, Fields) else Fields(),
        )
    # drop subtrees with nothing to say, so the default strategy applies there
    useful = {k: v for k, v in children.items() if isinstance(v, Strategy) or v.children}
    return Fields(useful)


def for_kind(kind: str) -> Fields:
    """Schema of a served kind (a key of ``openapi_table.ROOTS``)."""
    return for_definition(ROOTS[kind])


NODE = for_kind("Node")
POD = for_kind("Pod")
PLAIN = for_kind("Lease")  # ObjectMeta's merge lists only
