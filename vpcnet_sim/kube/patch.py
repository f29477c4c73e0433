"""The three patch formats of the Kubernetes API, as pure functions on JSON values.

- JSON merge patch (RFC 7386, ``application/merge-patch+json``): maps merge, ``null``
  deletes, everything else (lists included) replaces.
- JSON patch (RFC 6902, ``application/json-patch+json``): add/remove/replace/move/
  copy/test on JSON pointers (RFC 6901).
- Strategic merge patch (``application/strategic-merge-patch+json``): a merge patch
  that merges the lists the schema (``schema.py``) declares mergeable, with the
  ``$patch``, ``$retainKeys``, ``$deleteFromPrimitiveList/`` and ``$setElementOrder/``
  directives of k8s.io/apimachinery/pkg/util/strategicpatch.

Inputs are never mutated; results share no structure with the patch.
"""

from __future__ import annotations

from typing import Any

from vpcnet.errors import VpcnetError
from vpcnet_sim.kube.schema import Fields, Strategy

JSON = Any


class PatchError(VpcnetError):
    """A patch that cannot be applied."""


class MalformedPatch(PatchError):
    """The patch document itself is invalid (the apiserver answers 400 BadRequest)."""


class PatchFailed(PatchError):
    """A well-formed JSON patch that does not apply (failed ``test``, missing path: 422)."""


def clone(value: JSON) -> JSON:
    """Deep copy of a JSON value (faster than copy.deepcopy for plain JSON)."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def json_equal(a: JSON, b: JSON) -> bool:
    """JSON equality: unlike ``==``, ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            json_equal(v, b[k]) for k, v in a.items()
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(
            json_equal(x, y) for x, y in zip(a, b, strict=True)
        )
    return bool(a == b) and (isinstance(a, str) == isinstance(b, str))


# --- RFC 7386 -----------------------------------------------------------------------


def merge_patch(target: JSON, patch: JSON) -> JSON:
    if not isinstance(patch, dict):
        return clone(patch)
    result: dict[str, JSON] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- RFC 6902 -----------------------------------------------------------------------


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise PatchFailed(f"path must be a string, got {path!r}")
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchFailed(f"JSON pointer must start with '/': {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(token: str, length: int, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return length
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchFailed(f"invalid array index {token!r}")
    i = int(token)
    if i > length or (i == length and not allow_end):
        raise PatchFailed(f"array index {i} out of bounds")
    return i


def _resolve(doc: JSON, tokens: list[str]) -> JSON:
    node = doc
    for t in tokens:
        if isinstance(node, dict):
            if t not in node:
                raise PatchFailed(f"missing path element {t!r}")
            node = node[t]
        elif isinstance(node, list):
            node = node[_index(t, len(node), allow_end=False)]
        else:
            raise PatchFailed(f"cannot traverse into a scalar at {t!r}")
    return node


def _add(doc: JSON, tokens: list[str], value: JSON) -> JSON:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), allow_end=True), value)
    else:
        raise PatchFailed("cannot add to a scalar")
    return doc


def _remove(doc: JSON, tokens: list[str]) -> JSON:
    if not tokens:
        raise PatchFailed("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchFailed(f"missing path element {last!r}")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(last, len(parent), allow_end=False))
    raise PatchFailed("cannot remove from a scalar")


def json_patch(doc: JSON, operations: JSON) -> JSON:
    if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
        raise MalformedPatch("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    result = clone(doc)
    for op in operations:
        kind = op.get("op")
        tokens = _pointer(op.get("path"))
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchFailed(f"{kind} operation does not have a value")
        if kind == "add":
            result = _add(result, tokens, clone(op["value"]))
        elif kind == "remove":
            _remove(result, tokens)
        elif kind == "replace":
            _resolve(result, tokens)  # must exist
            if tokens:
                _remove(result, tokens)
            result = _add(result, tokens, clone(op["value"]))
        elif kind == "move":
            source = _pointer(op.get("from"))
            if tokens[: len(source)] == source and len(tokens) > len(source):
                raise PatchFailed("cannot move a value into one of its children")
            value = _resolve(result, source) if not source else _remove(result, source)
            result = _add(result, tokens, value)
        elif kind == "copy":
            value = clone(_resolve(result, _pointer(op.get("from"))))
            result = _add(result, tokens, value)
        elif kind == "test":
            if not json_equal(_resolve(result, tokens), op["value"]):
                raise PatchFailed(f"testing value {op.get('path')} failed: test failed")
        else:
            raise PatchFailed(f"Unexpected kind: {kind}")
    return result


# --- strategic merge patch ------------------------------------------------------------

_DIRECTIVE = "$patch"
_RETAIN = "$retainKeys"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
_ORDER = "$setElementOrder/"


def _is_directive_key(key: str) -> bool:
    return key in (_DIRECTIVE, _RETAIN) or key.startswith((_DELETE_PRIMITIVE, _ORDER))


def _strip(value: JSON) -> JSON:
    """A patch value inserted where nothing existed: drop directives, keep data."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not _is_directive_key(k) and v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and _DIRECTIVE in v)]
    return value


def strategic_merge_patch(original: JSON, patch: JSON, schema: Fields) -> JSON:
    if not isinstance(patch, dict):
        raise MalformedPatch("strategic merge patch must be a JSON object")
    return _merge_map(original if isinstance(original, dict) else {}, patch, schema)


def _merge_map(original: dict[str, JSON], patch: dict[str, JSON], schema: Fields) -> dict[str, JSON]:
    directive = patch.get(_DIRECTIVE)
    if directive == "replace":
        return {k: _strip(v) for k, v in patch.items() if not _is_directive_key(k)}
    if directive == "delete":
        return {}
    if directive not in (None, "merge"):
        raise MalformedPatch(f"Unknown patch type: {directive}")

    result = dict(original)
    retain = patch.get(_RETAIN)
    if retain is not None:
        if not isinstance(retain, list):
            raise MalformedPatch(f"{_RETAIN} must be a list")
        for key in list(result):
            if key not in retain:
                del result[key]
    orders: dict[str, list[JSON]] = {}
    for key, value in patch.items():
        if key.startswith(_DELETE_PRIMITIVE):
            field_name = key[len(_DELETE_PRIMITIVE):]
            if not isinstance(value, list):
                raise MalformedPatch(f"{key} must be a list")
            current = result.get(field_name)
            if isinstance(current, list):
                result[field_name] = [v for v in current if not any(json_equal(v, d) for d in value)]
            continue
        if key.startswith(_ORDER):
            if not isinstance(value, list):
                raise MalformedPatch(f"{key} must be a list")
            orders[key[len(_ORDER):]] = value
            continue
        if key in (_DIRECTIVE, _RETAIN):
            continue
        if value is None:
            result.pop(key, None)
            continue
        child = schema.children.get(key)
        current = result.get(key)
        if isinstance(value, dict) and value.get(_DIRECTIVE) == "delete":
            result.pop(key, None)
        elif isinstance(value, dict):
            sub = child if isinstance(child, Fields) else Fields()
            result[key] = _merge_map(current if isinstance(current, dict) else {}, value, sub)
        elif isinstance(value, list) and isinstance(child, Strategy):
            result[key] = _merge_list(current if isinstance(current, list) else [], value, child, key)
        else:
            result[key] = _strip(value)
    for key, order in orders.items():
        strategy = schema.children.get(key)
        if isinstance(result.get(key), list) and isinstance(strategy, Strategy):
            result[key] = _apply_order(result[key], order, strategy.merge_key)
    return result


def _merge_list(original: list[JSON], patch: list[JSON], strategy: Strategy, name: str) -> list[JSON]:
    if any(isinstance(p, dict) and p.get(_DIRECTIVE) == "replace" for p in patch):
        return [_strip(p) for p in patch if not (isinstance(p, dict) and _DIRECTIVE in p)]
    if strategy.merge_key is None:
        result = list(original)
        for item in patch:
            if isinstance(item, dict):
                raise MalformedPatch(f"list {name} of primitives cannot hold a map")
            if not any(json_equal(item, r) for r in result):
                result.append(item)
        return result

    key = strategy.merge_key
    result = list(original)
    for item in patch:
        if not isinstance(item, dict):
            raise MalformedPatch(f"list {name} is merged by {key!r}; each item must be a map")
        if key not in item:
            raise MalformedPatch(f"map: {item} does not contain declared merge key: {key}")
        at = next(
            (i for i, r in enumerate(result) if isinstance(r, dict) and json_equal(r.get(key), item[key])),
            None,
        )
        if item.get(_DIRECTIVE) == "delete":
            result = [
                r for r in result if not (isinstance(r, dict) and json_equal(r.get(key), item[key]))
            ]
        elif at is None:
            result.append(_strip(item))
        else:
            result[at] = _merge_map(result[at], item, strategy.items)
    return result


def _apply_order(items: list[JSON], order: list[JSON], merge_key: str | None) -> list[JSON]:
    """``$setElementOrder``: listed items first, in that order; the rest keep theirs."""

    def ident(item: JSON) -> JSON:
        return item.get(merge_key) if merge_key and isinstance(item, dict) else item

    wanted = [ident(o) for o in order]
    rank = {repr(w): i for i, w in enumerate(wanted)}
    listed = sorted((it for it in items if repr(ident(it)) in rank), key=lambda it: rank[repr(ident(it))])
    rest = [it for it in items if repr(ident(it)) not in rank]
    return listed + rest
