"""Strategic-merge-patch strategies of the fields the emulated kinds carry.

Taken from the ``patchStrategy``/``patchMergeKey`` tags of k8s.io/api (the OpenAPI
``x-kubernetes-patch-strategy``/``-merge-key``); a unit test checks this table against
the published OpenAPI schema. A field absent here is replaced as a whole when it is a
list (``NodeSpec.taints`` is atomic: a patch carrying taints replaces all of them) and
merged key by key when it is a map (labels, annotations).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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


OBJECT_META = Fields({
    "finalizers": Strategy(),
    "ownerReferences": Strategy("uid"),
})

CONTAINER = Fields({
    "env": Strategy("name"),
    "ports": Strategy("containerPort"),
    "volumeMounts": Strategy("mountPath"),
    "volumeDevices": Strategy("devicePath"),
})

NODE = Fields({
    "metadata": OBJECT_META,
    "spec": Fields({"podCIDRs": Strategy()}),
    "status": Fields({"addresses": Strategy("type"), "conditions": Strategy("type")}),
})

POD = Fields({
    "metadata": OBJECT_META,
    "spec": Fields({
        "containers": Strategy("name", items=CONTAINER),
        "initContainers": Strategy("name", items=CONTAINER),
        "ephemeralContainers": Strategy("name", items=CONTAINER),
        "volumes": Strategy("name", retain_keys=True),
        "imagePullSecrets": Strategy("name"),
        "hostAliases": Strategy("ip"),
        "schedulingGates": Strategy("name"),
        "resourceClaims": Strategy("name", retain_keys=True),
        "topologySpreadConstraints": Strategy("topologyKey"),
    }),
    "status": Fields({
        "conditions": Strategy("type"),
        "podIPs": Strategy("ip"),
        "hostIPs": Strategy("ip"),
        "resourceClaimStatuses": Strategy("name", retain_keys=True),
    }),
})

# Leases, Events and Namespaces have no merge lists beyond ObjectMeta's.
PLAIN = Fields({"metadata": OBJECT_META})
