"""API semantics on top of the store: create/get/list/update/patch/delete.

This is the emulator's counterpart of the apiserver's generic registry: system
metadata (uid, creationTimestamp, resourceVersion, generation), optimistic concurrency
(409 on a stale resourceVersion, in a PUT body or in a patch), status subresources,
no-op writes that keep the resourceVersion, finalizers, namespaces, validation and
chunked lists. Objects come in and go out in the served API version's shape.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vpcnet_sim.kube import codec, resources, status, validation
from vpcnet_sim.kube import patch as patches
from vpcnet_sim.kube.resources import NAMESPACES, Obj, ResourceType
from vpcnet_sim.kube.selectors import (
    FieldRequirement,
    LabelRequirement,
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from vpcnet_sim.kube.status import ApiStatusError, FieldError
from vpcnet_sim.kube.store import Change, Store

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_PATCH]

# metadata the server owns; clients cannot set or change it
_SYSTEM_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


_OMITTED_WHEN_EMPTY = ("labels", "annotations", "finalizers", "ownerReferences")


def _omit_empty_meta(obj: Obj) -> None:
    """Go's omitempty: the real apiserver never stores (nor serves) an empty labels or
    annotations map, finalizers or ownerReferences list; a JSON patch adding to a map
    that is "{}" here would succeed where the apiserver answers 422."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for key in _OMITTED_WHEN_EMPTY:
            if key in meta and not meta[key]:
                del meta[key]


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def external(rt: ResourceType, stored: Obj) -> Obj:
    """The stored object as this API version serves it, with kind and apiVersion."""
    return {"kind": rt.kind, "apiVersion": rt.api_version, **rt.from_storage(stored)}


@dataclass(frozen=True)
class Selector:
    """A list/watch filter: namespace, label selector and field selector."""

    rt: ResourceType
    namespace: str | None
    labels: tuple[LabelRequirement, ...] = ()
    fields: tuple[FieldRequirement, ...] = ()

    @classmethod
    def parse(cls, rt: ResourceType, namespace: str | None, label_selector: str | None,
              field_selector: str | None) -> Selector:
        try:
            return cls(rt, namespace, parse_label_selector(label_selector),
                       parse_field_selector(field_selector, rt.field_labels))
        except SelectorError as e:
            raise status.bad_request(str(e)) from e

    @property
    def trivial(self) -> bool:
        return not self.labels and not self.fields

    def matches(self, stored: Obj) -> bool:
        meta = stored.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace", "") != self.namespace:
            return False
        if self.labels and not labels_match(self.labels, meta.get("labels")):
            return False
        return not self.fields or fields_match(
            self.fields, self.rt.from_storage(stored), self.rt.field_labels
        )

    def event_for(self, change: Change) -> str | None:
        """The watch event type this watcher sees for a change, or None.

        An object moving into the selection is ADDED, moving out is DELETED, as the
        apiserver's watch cache reports selector transitions.
        """
        if change.storage != self.rt.storage:
            return None
        now_in = change.type != "DELETED" and self.matches(change.obj)
        was_in = change.prev is not None and self.matches(change.prev)
        if change.type == "DELETED":
            return "DELETED" if self.matches(change.obj) else None
        if now_in and was_in:
            return "MODIFIED"
        if now_in:
            return "ADDED"
        if was_in:
            return "DELETED"
        return None


class Registry:
    def __init__(self, store: Store, *, snapshots: int = 32) -> None:
        self.store = store
        self._snapshots: OrderedDict[tuple[str, int], list[Obj]] = OrderedDict()
        self._snapshot_limit = snapshots
        self._snapshot_lock = threading.Lock()
        for name in resources.BUILTIN_NAMESPACES:
            if store.get("namespaces", "", name) is None:
                self.create(NAMESPACES, None, {"metadata": {"name": name}})

    # --- helpers --------------------------------------------------------------------

    def _namespace_of(self, rt: ResourceType, namespace: str | None, meta: dict[str, Any],
                      ) -> str:
        if not rt.namespaced:
            meta.pop("namespace", None)
            return ""
        assert namespace is not None, "namespaced resource without a namespace in the path"
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise status.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = namespace
        return namespace

    def _require_namespace(self, rt: ResourceType, namespace: str) -> None:
        if rt.namespaced and self.store.get("namespaces", "", namespace) is None:
            raise status.namespace_not_found(namespace)

    def _decode_body(self, rt: ResourceType, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise status.bad_request(f"the body of the request is not a {rt.kind} object")
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if (kind and kind != rt.kind) or (api_version and api_version != rt.api_version):
            raise status.bad_request(
                f"{kind} in version \"{api_version}\" cannot be handled as a {rt.kind}: "
                f"expected {rt.api_version}, Kind={rt.kind}"
            )
        obj: Obj = patches.clone(body)
        obj.pop("kind", None)
        obj.pop("apiVersion", None)
        if not isinstance(obj.setdefault("metadata", {}), dict):
            raise status.bad_request("metadata must be an object")
        for name in rt.struct_fields:
            if obj.get(name) is None:
                obj[name] = {}
        try:
            codec.decode(obj, rt.codec_kind)
        except codec.DecodeError as e:
            raise status.bad_request(f"the body of the request could not be decoded: {e}") from e
        rt.defaults(obj)
        return obj

    def _validate(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        meta = obj["metadata"]
        errors: list[FieldError] = validation.metadata_errors(
            meta, namespaced=rt.namespaced, dns_label=rt.dns_label_names
        )
        errors += rt.validate(obj, old)
        if errors:
            raise status.invalid_object(rt.kind, rt.group, str(meta.get("name", "")), errors)

    def _commit(self, kind: str, rt: ResourceType, namespace: str, name: str, obj: Obj,
                prev: Obj | None, dry_run: bool) -> Obj:
        _omit_empty_meta(obj)
        stored = rt.to_storage(obj)
        if dry_run:
            return stored
        return self.store.commit(kind, rt.storage, namespace, name, stored, prev)

    # --- create / get ---------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str | None, body: Any, *,
               dry_run: bool = False, admit: bool = True) -> Obj:
        """``admit=False``: skip the mutating admission plugins (the emulator's own
        shortcuts, which create an object as it looks once controllers acted on it)."""
        obj = self._decode_body(rt, body)
        meta = obj["metadata"]
        ns = self._namespace_of(rt, namespace, meta)
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choice(_NAME_CHARS) for _ in range(5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        if meta.get("resourceVersion"):
            raise status.internal("resourceVersion should not be set on objects to be created")
        for key in (*_SYSTEM_META, "managedFields", "selfLink"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if rt.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        rt.prepare_create(obj)
        if admit:
            rt.admit_create(obj)
        self._validate(rt, obj, None)
        with self.store.lock:
            self._require_namespace(rt, ns)
            name = meta["name"]
            if self.store.get(rt.storage, ns, name) is not None:
                raise status.already_exists(rt.plural, rt.group, name)
            stored = self._commit("ADDED", rt, ns, name, obj, None, dry_run)
        return external(rt, stored)

    def _current(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        stored = self.store.get(rt.storage, namespace or "", name)
        if stored is None:
            raise status.not_found(rt.plural, rt.group, name)
        return stored

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        return external(rt, self._current(rt, namespace, name))

    # --- list -----------------------------------------------------------------------

    def list_collection(self, rt: ResourceType, selector: Selector, *, limit: int = 0,
             continue_token: str | None = None) -> Obj:
        if continue_token:
            rv, start = _decode_continue(continue_token)
            items = self._snapshot(rt.storage, rv)
            if items is None:
                raise status.expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                )
        else:
            with self.store.lock:
                items, rv = self.store.items(rt.storage), self.store.rv
            start = None
            if limit:
                self._remember(rt.storage, rv, items)
        index = 0
        if start is not None:
            index = next((i for i, o in enumerate(items) if _key(o) > start), len(items))
        selected: list[Obj] = []
        while index < len(items) and (not limit or len(selected) < limit):
            if selector.matches(items[index]):
                selected.append(items[index])
            index += 1
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        remaining = [o for o in items[index:] if selector.matches(o)] if limit else []
        if remaining:
            metadata["continue"] = _encode_continue(rv, _key(selected[-1]) if selected else start)
            if selector.trivial:
                metadata["remainingItemCount"] = len(remaining)
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version,
            "metadata": metadata,
            "items": [rt.from_storage(o) for o in selected],
        }

    def _remember(self, storage: str, rv: int, items: list[Obj]) -> None:
        with self._snapshot_lock:
            self._snapshots[(storage, rv)] = items
            while len(self._snapshots) > self._snapshot_limit:
                self._snapshots.popitem(last=False)

    def _snapshot(self, storage: str, rv: int) -> list[Obj] | None:
        with self._snapshot_lock:
            return self._snapshots.get((storage, rv))

    # --- update / patch -------------------------------------------------------------

    def update(self, rt: ResourceType, namespace: str | None, name: str, body: Any, *,
               subresource: str | None = None, dry_run: bool = False) -> tuple[int, Obj]:
        obj = self._decode_body(rt, body)
        meta = obj["metadata"]
        if meta.get("name") != name:
            raise status.bad_request(
                f"the name of the object ({meta.get('name', '')}) does not match the name on the URL ({name})"
            )
        ns = self._namespace_of(rt, namespace, meta)
        with self.store.lock:
            current = self.store.get(rt.storage, ns, name)
            if current is None:
                if rt.create_on_update and subresource is None:
                    meta.pop("resourceVersion", None)
                    return 201, self.create(rt, namespace, obj, dry_run=dry_run)
                raise status.not_found(rt.plural, rt.group, name)
            requested = meta.get("resourceVersion") or ""
            if not requested and not rt.unconditional_update:
                raise status.invalid_object(rt.plural, rt.group, name, [status.FieldError(
                    "FieldValueInvalid", "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update")])
            return 200, self._apply_update(rt, ns, name, current, obj, requested, subresource, dry_run)

    def patch(self, rt: ResourceType, namespace: str | None, name: str, content_type: str,
              raw: bytes, *, subresource: str | None = None, dry_run: bool = False) -> Obj:
        apply: Callable[[Obj, Any], Any]
        if content_type == JSON_PATCH:
            apply = patches.json_patch
        elif content_type == MERGE_PATCH:
            apply = patches.merge_patch
        elif content_type == STRATEGIC_PATCH:
            def apply(doc: Obj, p: Any) -> Any:
                return patches.strategic_merge_patch(doc, p, rt.patch_schema)
        elif content_type == APPLY_PATCH:
            raise status.unsupported_media_type(
                content_type, [JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH]
            )  # server-side apply is not emulated
        else:
            raise status.unsupported_media_type(content_type, PATCH_TYPES)
        try:
            document = json.loads(raw or b"null")
        except ValueError as e:
            raise status.bad_request(f"error decoding patch: {e}") from e
        if content_type == MERGE_PATCH and not isinstance(document, dict):
            raise status.bad_request("Invalid JSON Patch")
        ns = (namespace or "") if rt.namespaced else ""
        with self.store.lock:
            current = self._current(rt, ns, name)
            try:
                patched = apply(external(rt, current), document)
            except patches.MalformedPatch as e:
                raise status.bad_request(str(e)) from e
            except patches.PatchFailed as e:
                raise status.json_patch_failed() from e
            if not isinstance(patched, dict):
                raise status.bad_request("the patched object is not a JSON object")
            obj = self._decode_body(rt, patched)
            meta = obj["metadata"]
            if meta.get("name") != name:
                raise status.bad_request(
                    f"the name of the object ({meta.get('name', '')}) does not match the name on the URL ({name})"
                )
            if rt.namespaced:
                self._namespace_of(rt, ns, meta)
            requested = meta.get("resourceVersion") or ""
            return self._apply_update(rt, ns, name, current, obj, requested, subresource, dry_run)

    def _apply_update(self, rt: ResourceType, ns: str, name: str, current: Obj, obj: Obj,
                      requested: str, subresource: str | None, dry_run: bool) -> Obj:
        cur_meta = current["metadata"]
        if requested and requested != cur_meta["resourceVersion"]:
            raise status.stale(rt.plural, rt.group, name)
        uid = obj["metadata"].get("uid")
        if uid and uid != cur_meta["uid"]:
            raise status.conflict(
                rt.plural, rt.group, name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {cur_meta['uid']}",
            )
        old = rt.from_storage(current)
        if subresource == "status":
            # Status writes change status only (ResetObjectMetaForStatus; spec kept).
            new = patches.clone(old)
            new["status"] = obj.get("status") or {}
            new["metadata"] = dict(new["metadata"])
        else:
            new = obj
            if rt.has_status:
                new["status"] = patches.clone(old.get("status") or {})
            meta = new["metadata"]
            for key in (*_SYSTEM_META, "generation"):
                if key in cur_meta:
                    meta[key] = cur_meta[key]
                else:
                    meta.pop(key, None)
            meta.pop("managedFields", None)
            meta.pop("selfLink", None)
            meta["name"] = name
            if rt.tracks_generation and new.get("spec") != old.get("spec"):
                meta["generation"] = int(cur_meta.get("generation", 0)) + 1
        new["metadata"]["resourceVersion"] = cur_meta["resourceVersion"]
        self._validate(rt, new, old)
        _omit_empty_meta(new)
        if patches.json_equal(rt.to_storage(patches.clone(new)), current):
            return external(rt, current)  # no-op: no new resourceVersion, no watch event
        if (cur_meta.get("deletionTimestamp") and not new["metadata"].get("finalizers")):
            # the last finalizer is gone: the pending deletion completes now
            stored = self._commit("MODIFIED", rt, ns, name, new, current, dry_run)
            return external(rt, self._delete_now(rt, ns, name, stored, dry_run))
        return external(rt, self._commit("MODIFIED", rt, ns, name, new, current, dry_run))

    # --- delete ---------------------------------------------------------------------

    def delete(self, rt: ResourceType, namespace: str | None, name: str,
               options: dict[str, Any] | None = None, *, dry_run: bool = False) -> tuple[int, Obj]:
        options = options or {}
        ns = (namespace or "") if rt.namespaced else ""
        with self.store.lock:
            current = self._current(rt, ns, name)
            meta = current["metadata"]
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != meta["uid"]:
                raise status.conflict(rt.plural, rt.group, name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta['uid']}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise status.conflict(rt.plural, rt.group, name,
                    f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                    f"ResourceVersion in object meta: {meta['resourceVersion']}")
            if rt is NAMESPACES and name in resources.BUILTIN_NAMESPACES[:3]:
                raise status.ApiStatusError(
                    403, "Forbidden",
                    f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                    {"name": name, "kind": "namespaces"},
                )
            if meta.get("finalizers"):
                if meta.get("deletionTimestamp"):
                    return 202, external(rt, current)
                terminating = dict(current, metadata=dict(meta, deletionTimestamp=now(),
                                                          deletionGracePeriodSeconds=0))
                stored = self.store.commit("MODIFIED", rt.storage, ns, name, terminating, current) \
                    if not dry_run else terminating
                return 202, external(rt, stored)
            if rt is NAMESPACES and not dry_run:
                self._empty_namespace(name)
            final = self._delete_now(rt, ns, name, current, dry_run)
        if rt.returns_deleted_object:
            return 200, external(rt, final)
        details: dict[str, Any] = {"name": name}
        if rt.group:
            details["group"] = rt.group
        details.update({"kind": rt.plural, "uid": meta["uid"]})
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                     "status": "Success", "details": details}

    def _delete_now(self, rt: ResourceType, ns: str, name: str, current: Obj, dry_run: bool) -> Obj:
        final = dict(current, metadata=dict(current["metadata"]))
        if dry_run:
            return final
        return self.store.commit("DELETED", rt.storage, ns, name, final, current)

    def _empty_namespace(self, namespace: str) -> None:
        for rt in resources.ALL:
            if rt.namespaced and rt.storage == rt.plural:  # each storage once
                for obj in self.store.items(rt.storage, namespace):
                    self._delete_now(rt, namespace, obj["metadata"]["name"], obj, False)

    def delete_collection(self, rt: ResourceType, selector: Selector,
                          options: dict[str, Any] | None = None, *, dry_run: bool = False) -> Obj:
        with self.store.lock:
            targets = [o for o in self.store.items(rt.storage, selector.namespace) if selector.matches(o)]
            deleted = []
            for obj in targets:
                meta = obj["metadata"]
                self.delete(rt, meta.get("namespace"), meta["name"], options, dry_run=dry_run)
                deleted.append(rt.from_storage(obj))
            rv = self.store.rv
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(rv)}, "items": deleted}


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


def _encode_continue(rv: int, start: tuple[str, str] | None) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(start or ("", ""))})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as e:
        raise status.bad_request(f"continue key is not valid: {e}") from e


__all__ = ["ApiStatusError", "Registry", "Selector", "external", "now"]
