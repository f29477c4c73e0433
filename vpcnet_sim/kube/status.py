"""API errors as the real kube-apiserver sends them: ``metav1.Status`` objects.

Messages, reasons and ``details`` follow k8s.io/apimachinery/pkg/api/errors so that
clients matching on ``reason`` or on message text behave as against a real server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from vpcnet.errors import VpcnetError


def qualified(plural: str, group: str) -> str:
    """``nodes`` / ``leases.coordination.k8s.io``: how the apiserver names a resource."""
    return f"{plural}.{group}" if group else plural


class ApiStatusError(VpcnetError):
    """A failed API request; ``status()`` is the body the server returns."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body

    def body(self) -> bytes:
        return json.dumps(self.status(), separators=(",", ":")).encode()


def _details(name: str, group: str, kind: str) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if kind:
        d["kind"] = kind
    return d


def not_found(plural: str, group: str, name: str) -> ApiStatusError:
    return ApiStatusError(
        404, "NotFound", f'{qualified(plural, group)} "{name}" not found',
        _details(name, group, plural),
    )


def namespace_not_found(name: str) -> ApiStatusError:
    return not_found("namespaces", "", name)


def route_not_found() -> ApiStatusError:
    return ApiStatusError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(plural: str, group: str, name: str) -> ApiStatusError:
    return ApiStatusError(
        409, "AlreadyExists", f'{qualified(plural, group)} "{name}" already exists',
        _details(name, group, plural),
    )


def conflict(plural: str, group: str, name: str, why: str) -> ApiStatusError:
    return ApiStatusError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {why}',
        _details(name, group, plural),
    )


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def stale(plural: str, group: str, name: str) -> ApiStatusError:
    return conflict(plural, group, name, STALE)


@dataclass(frozen=True)
class FieldError:
    """One ``field.Error``: its text is ``<field>: <type>: <detail>`` as in apimachinery."""

    type: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, ...
    field: str
    message: str  # without the field path, e.g. 'Unsupported value: "X": supported values: ...'

    def text(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def required(path: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", path, "Required value" + (f": {detail}" if detail else ""))


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", path, f"Invalid value: {_show(value)}: {detail}")


def not_supported(path: str, value: Any, supported: list[str]) -> FieldError:
    allowed = ", ".join(json.dumps(s) for s in supported)
    return FieldError(
        "FieldValueNotSupported", path, f"Unsupported value: {_show(value)}: supported values: {allowed}"
    )


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", path, f"Duplicate value: {_show(value)}")


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", path, f"Forbidden: {detail}")


def too_long(path: str, limit: int) -> FieldError:
    return FieldError("FieldValueTooLong", path, f"Too long: may not be more than {limit} bytes")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def invalid_object(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiStatusError:
    """422 Invalid: ``Node "n1" is invalid: spec.taints[0].effect: Unsupported value: ...``."""
    texts = [e.text() for e in errors]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details = _details(name, group, kind)
    details["causes"] = [
        {"reason": e.type, "message": e.message, "field": e.field} for e in errors
    ]
    return ApiStatusError(
        422, "Invalid", f'{qualified(kind, group)} "{name}" is invalid: {joined}', details
    )


def bad_request(message: str) -> ApiStatusError:
    return ApiStatusError(400, "BadRequest", message)


def json_patch_failed() -> ApiStatusError:
    # NewGenericServerResponse(422, ...) in patch.go drops the jsonpatch error text.
    return ApiStatusError(
        422, "Invalid", "the server rejected our request due to an error in our request", {}
    )


def expired(message: str) -> ApiStatusError:
    return ApiStatusError(410, "Expired", message)


def too_old_resource_version(requested: int, oldest: int) -> ApiStatusError:
    return expired(f"too old resource version: {requested} ({oldest})")


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiStatusError:
    return ApiStatusError(
        415, "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}",
    )


def method_not_allowed(method: str) -> ApiStatusError:
    return ApiStatusError(
        405, "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({method})", {},
    )


def internal(message: str) -> ApiStatusError:
    return ApiStatusError(
        500, "InternalError", f"Internal error occurred: {message}",
        {"causes": [{"message": message}]},
    )
