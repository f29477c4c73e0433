"""Validation the real apiserver applies to the emulated kinds (422 Invalid on failure).

Covers what clients of vpcnet can trip over: names, label and annotation syntax,
taints (key, value, effect, duplicates), immutable fields, pod spec basics, Lease and
Event fields. Each function returns ``FieldError``s; an empty list means valid.
"""

from __future__ import annotations

import json
import re
from typing import Any

from vpcnet_sim.kube.status import (
    FieldError,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
    too_long,
)

_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    f"regex used for validation is '{_SUBDOMAIN}')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    f"regex used for validation is '{_LABEL}')"
)
QUALIFIED_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    f"used for validation is '{_QUALIFIED}')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    f"'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE}')"
)

TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
EVENT_TYPES = ["Normal", "Warning"]
_ANNOTATIONS_MAX = 256 * 1024


def is_subdomain(name: str) -> bool:
    return len(name) <= 253 and re.fullmatch(_SUBDOMAIN, name) is not None


def is_label(name: str) -> bool:
    return len(name) <= 63 and re.fullmatch(_LABEL, name) is not None


def name_errors(name: Any, path: str, *, dns_label: bool = False) -> list[FieldError]:
    if not isinstance(name, str) or not name:
        return [required(path, "name or generateName is required")]
    if dns_label:
        if len(name) > 63:
            return [invalid(path, name, "must be no more than 63 characters")]
        return [] if is_label(name) else [invalid(path, name, LABEL_MSG)]
    if len(name) > 253:
        return [invalid(path, name, "must be no more than 253 characters")]
    return [] if is_subdomain(name) else [invalid(path, name, SUBDOMAIN_MSG)]


def qualified_name_errors(key: Any, path: str) -> list[FieldError]:
    if not isinstance(key, str) or not key:
        return [invalid(path, key, "name part must be non-empty")]
    prefix, slash, name = key.rpartition("/")
    errors: list[FieldError] = []
    if slash:
        if not prefix:
            errors.append(invalid(path, key, "prefix part must be non-empty"))
        elif not is_subdomain(prefix):
            errors.append(invalid(path, key, "prefix part " + SUBDOMAIN_MSG))
    if not name:
        errors.append(invalid(path, key, "name part must be non-empty"))
    elif len(name) > 63:
        errors.append(invalid(path, key, "name part must be no more than 63 characters"))
    elif not re.fullmatch(_QUALIFIED, name):
        errors.append(invalid(path, key, QUALIFIED_MSG))
    return errors


def label_value_errors(value: Any, path: str) -> list[FieldError]:
    if not isinstance(value, str):
        return [invalid(path, value, "must be a string")]
    if len(value) > 63:
        return [invalid(path, value, "must be no more than 63 characters")]
    return [] if re.fullmatch(_LABEL_VALUE, value) else [invalid(path, value, LABEL_VALUE_MSG)]


def metadata_errors(meta: dict[str, Any], *, namespaced: bool, dns_label: bool = False) -> list[FieldError]:
    errors = name_errors(meta.get("name"), "metadata.name", dns_label=dns_label)
    if namespaced and not meta.get("namespace"):
        errors.append(required("metadata.namespace"))
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        errors.append(invalid("metadata.labels", labels, "must be a map"))
    else:
        for key, value in labels.items():
            errors += qualified_name_errors(key, "metadata.labels")
            errors += label_value_errors(value, "metadata.labels")
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict):
        errors.append(invalid("metadata.annotations", annotations, "must be a map"))
    else:
        for key, value in annotations.items():
            errors += qualified_name_errors(key.lower() if isinstance(key, str) else key,
                                            "metadata.annotations")
            if not isinstance(value, str):
                errors.append(invalid("metadata.annotations", value, "must be a string"))
        if len(json.dumps(annotations)) > _ANNOTATIONS_MAX:
            errors.append(too_long("metadata.annotations", _ANNOTATIONS_MAX))
    return errors


def taint_errors(taints: Any, path: str = "spec.taints") -> list[FieldError]:
    if taints is None:
        return []
    if not isinstance(taints, list):
        return [invalid(path, taints, "must be a list")]
    errors: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints):
        at = f"{path}[{i}]"
        if not isinstance(taint, dict):
            errors.append(invalid(at, taint, "must be an object"))
            continue
        key, effect = taint.get("key", ""), taint.get("effect", "")
        errors += qualified_name_errors(key, f"{at}.key")
        if "value" in taint and taint["value"] is not None:
            errors += label_value_errors(taint["value"], f"{at}.value")
        if not effect:
            errors.append(required(f"{at}.effect"))
        elif effect not in TAINT_EFFECTS:
            errors.append(not_supported(f"{at}.effect", effect, TAINT_EFFECTS))
        if (key, effect) in seen:
            errors.append(duplicate(at, {"key": key, "effect": effect}))
        seen.add((key, effect))
    return errors


def node_errors(node: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    spec = node.get("spec") or {}
    # The apiserver's ValidateNode names spec.taints "metadata.taints" in its errors (an
    # upstream quirk since 1.6, kept for compatibility): so does the emulator.
    errors = taint_errors(spec.get("taints"), "metadata.taints")
    if old is not None:
        old_spec = old.get("spec") or {}
        old_id, new_id = old_spec.get("providerID", ""), spec.get("providerID", "")
        if old_id and old_id != new_id:
            errors.append(forbidden(
                "spec.providerID", "node updates may not change providerID except from \"\" to valid"
            ))
        old_cidrs = old_spec.get("podCIDRs") or []
        if old_cidrs and old_cidrs != (spec.get("podCIDRs") or []):
            errors.append(forbidden("spec.podCIDRs", "node updates may not change podCIDR except from \"\" to valid"))
    return errors


_MUTABLE_POD_SPEC = (
    "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)"
)


def _pod_spec_fixed_part(spec: dict[str, Any]) -> dict[str, Any]:
    fixed = {k: v for k, v in spec.items()
             if k not in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")}
    for key in ("containers", "initContainers"):
        if isinstance(fixed.get(key), list):
            fixed[key] = [{k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c
                          for c in fixed[key]]
    return fixed


def pod_errors(pod: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errors: list[FieldError] = []
    containers = spec.get("containers")
    if not containers or not isinstance(containers, list):
        errors.append(required("spec.containers"))
    else:
        names: set[str] = set()
        for i, c in enumerate(containers):
            at = f"spec.containers[{i}]"
            name = c.get("name") if isinstance(c, dict) else None
            errors += name_errors(name, f"{at}.name", dns_label=True)
            if name in names:
                errors.append(duplicate(f"{at}.name", name))
            names.add(str(name))
            if isinstance(c, dict) and not c.get("image"):
                errors.append(required(f"{at}.image"))
    node_name = spec.get("nodeName")
    if node_name and not is_subdomain(str(node_name)):
        errors.append(invalid("spec.nodeName", node_name, SUBDOMAIN_MSG))
    if old is not None and _pod_spec_fixed_part(spec) != _pod_spec_fixed_part(old.get("spec") or {}):
        errors.append(FieldError("FieldValueForbidden", "spec", _MUTABLE_POD_SPEC.split(": ", 1)[1]))
    return errors


def lease_errors(lease: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    spec = lease.get("spec") or {}
    errors: list[FieldError] = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and (not isinstance(duration, int) or duration <= 0):
        errors.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and (not isinstance(transitions, int) or transitions < 0):
        errors.append(invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    return errors


def core_event_errors(event: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    """core/v1 Events: the legacy rules (namespace consistency with the involved object)."""
    errors: list[FieldError] = []
    involved = event.get("involvedObject") or {}
    namespace = (event.get("metadata") or {}).get("namespace", "")
    obj_ns = involved.get("namespace", "")
    if obj_ns and obj_ns != namespace:
        errors.append(invalid("involvedObject.namespace", obj_ns, "does not match event.namespace"))
    if event.get("type") and event["type"] not in EVENT_TYPES:
        errors.append(not_supported("type", event["type"], EVENT_TYPES))
    return errors


def events_v1_errors(event: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    """events.k8s.io/v1: the new-style Event must say who reported what, and when."""
    errors: list[FieldError] = []
    if not event.get("eventTime"):
        errors.append(required("eventTime"))
    controller = event.get("reportingController")
    if not controller:
        errors.append(required("reportingController"))
    else:
        errors += qualified_name_errors(controller, "reportingController")
    for name, limit in (("reportingInstance", 128), ("action", 128), ("reason", 128)):
        value = event.get(name)
        if not value:
            errors.append(required(name))
        elif len(value) > limit:
            errors.append(too_long(name, limit))
    if event.get("type") not in EVENT_TYPES:
        errors.append(not_supported("type", event.get("type", ""), EVENT_TYPES))
    note = event.get("note") or ""
    if len(note) > 1024:
        errors.append(too_long("note", 1024))
    series = event.get("series")
    if series is not None and (not isinstance(series.get("count"), int) or series["count"] < 2):
        errors.append(invalid("series.count", series.get("count"), "should be at least 2"))
    return errors


def namespace_errors(namespace: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    return []
