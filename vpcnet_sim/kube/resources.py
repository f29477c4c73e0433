"""The resource types the emulator serves, with their per-kind rules.

A ``ResourceType`` says where a kind lives (group/version/plural, namespaced or not),
which store it shares (core/v1 and events.k8s.io/v1 Events are one resource), the
field selectors it supports, its strategic-merge schema, validation, and defaulting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vpcnet_sim.kube import codec, eventsv1, schema, validation
from vpcnet_sim.kube.selectors import FieldGetter
from vpcnet_sim.kube.status import FieldError

Obj = dict[str, Any]
Validator = Callable[[Obj, Obj | None], list[FieldError]]


def _identity(obj: Obj) -> Obj:
    return obj


def _no_defaults(obj: Obj) -> None:
    return None


def field_path(path: str) -> FieldGetter:
    keys = path.split(".")

    def get(obj: dict[str, object]) -> str:
        node: Any = obj
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        if node is None:
            return ""
        if isinstance(node, bool):
            return "true" if node else "false"
        return str(node)

    return get


def _fields(*paths: str, **aliases: str) -> dict[str, FieldGetter]:
    getters = {p: field_path(p) for p in ("metadata.name", *paths)}
    getters.update({alias: field_path(real) for alias, real in aliases.items()})
    return getters


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    storage: str
    has_status: bool = False
    short_names: tuple[str, ...] = ()
    field_labels: Mapping[str, FieldGetter] = field(default_factory=dict)
    patch_schema: schema.Fields = schema.PLAIN
    validate: Validator = lambda obj, old: []
    defaults: Callable[[Obj], None] = _no_defaults  # defaulting, on every write
    prepare_create: Callable[[Obj], None] = _no_defaults  # the strategy's PrepareForCreate
    admit_create: Callable[[Obj], None] = _no_defaults  # mutating admission plugins
    # non-pointer struct fields: always present in the JSON, as {} when empty
    struct_fields: tuple[str, ...] = ()
    # stored (canonical) shape <-> the shape this API version serves
    to_storage: Callable[[Obj], Obj] = _identity
    from_storage: Callable[[Obj], Obj] = _identity
    tracks_generation: bool = False
    dns_label_names: bool = False
    # the registry strategy's AllowCreateOnUpdate / AllowUnconditionalUpdate
    create_on_update: bool = False
    unconditional_update: bool = True
    # DELETE answers with the deleted object (pods, namespaces) instead of a Status
    returns_deleted_object: bool = False
    # key of zero_table.ROOTS: the required fields filled with Go zero values
    codec_kind: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def discovery(self) -> list[dict[str, Any]]:
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        entries: list[dict[str, Any]] = [{
            "name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
            "kind": self.kind, "verbs": verbs,
            **({"shortNames": list(self.short_names)} if self.short_names else {}),
            "storageVersionHash": "",
        }]
        if self.has_status:
            entries.append({
                "name": f"{self.plural}/status", "singularName": "", "namespaced": self.namespaced,
                "kind": self.kind, "verbs": ["get", "patch", "update"],
            })
        return entries


def _pod_defaults(pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    for key, value in (
        ("restartPolicy", "Always"), ("dnsPolicy", "ClusterFirst"),
        ("schedulerName", "default-scheduler"), ("terminationGracePeriodSeconds", 30),
        ("securityContext", {}), ("enableServiceLinks", True), ("priority", 0),
        ("preemptionPolicy", "PreemptLowerPriority"),
    ):
        spec.setdefault(key, value)
    for container in spec.get("containers") or []:
        if not isinstance(container, dict):
            continue
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        container.setdefault("imagePullPolicy", "Always" if tag in ("", "latest") else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})


def _pod_prepare_create(pod: Obj) -> None:
    # A new pod's status is the server's, not the client's.
    pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}


def _namespace_defaults(ns: Obj) -> None:
    meta = ns.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = meta.get("name", "")
    ns.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])


def _namespace_prepare_create(ns: Obj) -> None:
    ns["status"] = {"phase": "Active"}


NODE_NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}


def _node_admit_create(node: Obj) -> None:
    # The TaintNodesByCondition admission plugin (on by default): a new Node carries
    # node.kubernetes.io/not-ready:NoSchedule until the node lifecycle controller sees it
    # Ready and removes it (KubeEmulator.add_node registers a node that far along).
    spec = node.setdefault("spec", {})
    taints = spec.get("taints") or []
    if not any(isinstance(t, dict) and t.get("key") == NODE_NOT_READY_TAINT["key"]
               for t in taints):
        spec["taints"] = [*taints, dict(NODE_NOT_READY_TAINT)]


def _event_defaults(event: Obj) -> None:
    # non-pointer structs: Go always encodes them, empty or not
    event.setdefault("involvedObject", {})
    event.setdefault("source", {})


NODES = ResourceType(
    group="", version="v1", plural="nodes", singular="node", kind="Node", namespaced=False,
    storage="nodes", has_status=True, short_names=("no",), codec_kind="Node",
    field_labels=_fields("spec.unschedulable"),
    patch_schema=schema.NODE, validate=validation.node_errors, struct_fields=("spec", "status"),
    admit_create=_node_admit_create,
)
PODS = ResourceType(
    group="", version="v1", plural="pods", singular="pod", kind="Pod", namespaced=True,
    storage="pods", has_status=True, short_names=("po",), codec_kind="Pod",
    field_labels=_fields(
        "metadata.namespace", "spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
        "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
        "status.nominatedNodeName",
    ),
    patch_schema=schema.POD, validate=validation.pod_errors, defaults=_pod_defaults,
    prepare_create=_pod_prepare_create, struct_fields=("spec", "status"),
    tracks_generation=True, returns_deleted_object=True,
)
NAMESPACES = ResourceType(
    group="", version="v1", plural="namespaces", singular="namespace", kind="Namespace",
    namespaced=False, storage="namespaces", has_status=True, short_names=("ns",),
    codec_kind="Namespace",
    field_labels=_fields("status.phase"), validate=validation.namespace_errors,
    patch_schema=schema.for_kind("Namespace"),
    defaults=_namespace_defaults, dns_label_names=True, returns_deleted_object=True,
    prepare_create=_namespace_prepare_create, struct_fields=("spec", "status"),
)
_CORE_EVENT_FIELDS = (
    "metadata.namespace", "involvedObject.kind", "involvedObject.namespace",
    "involvedObject.name", "involvedObject.uid", "involvedObject.apiVersion",
    "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
    "reportingComponent", "type",
)
EVENTS = ResourceType(
    group="", version="v1", plural="events", singular="event", kind="Event", namespaced=True,
    storage="events", short_names=("ev",), codec_kind="Event",
    field_labels=_fields(*_CORE_EVENT_FIELDS, source="source.component"),
    patch_schema=schema.for_kind("Event"),
    validate=validation.core_event_errors, defaults=_event_defaults, create_on_update=True,
)
EVENTS_V1 = ResourceType(
    group="events.k8s.io", version="v1", plural="events", singular="event", kind="Event",
    namespaced=True, storage="events", short_names=("ev",), codec_kind="events.k8s.io/Event",
    field_labels=_fields(
        "metadata.namespace", "regarding.kind", "regarding.namespace", "regarding.name",
        "regarding.uid", "regarding.apiVersion", "regarding.resourceVersion",
        "regarding.fieldPath", "reason", "reportingController", "type",
        **{f"involvedObject.{f}": f"regarding.{f}" for f in (
            "kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
        reportingComponent="reportingController", source="deprecatedSource.component",
    ),
    validate=validation.events_v1_errors, defaults=_no_defaults,
    struct_fields=("regarding", "deprecatedSource"),
    patch_schema=schema.for_kind("events.k8s.io/Event"),
    to_storage=lambda e: _with_event_defaults(eventsv1.to_core(e)), from_storage=eventsv1.from_core,
    create_on_update=True,
)
LEASES = ResourceType(
    group="coordination.k8s.io", version="v1", plural="leases", singular="lease", kind="Lease",
    namespaced=True, storage="leases", codec_kind="Lease",
    field_labels=_fields("metadata.namespace"), validate=validation.lease_errors,
    create_on_update=True, unconditional_update=False, struct_fields=("spec",),
)


def _with_event_defaults(event: Obj) -> Obj:
    _event_defaults(event)
    return codec.decode(event, "Event")


ALL: tuple[ResourceType, ...] = (NODES, PODS, NAMESPACES, EVENTS, EVENTS_V1, LEASES)

# (group, version, plural) -> type, for routing
BY_PATH: dict[tuple[str, str, str], ResourceType] = {
    (r.group, r.version, r.plural): r for r in ALL
}

GROUPS: dict[str, list[str]] = {}
for _r in ALL:
    if _r.group:
        versions = GROUPS.setdefault(_r.group, [])
        if _r.version not in versions:
            versions.append(_r.version)

# Namespaces that exist on every cluster.
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
