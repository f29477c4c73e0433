"""Kubernetes API failures as :mod:`vpcnet.errors` types, so retry decisions follow the type.

404 is "not found", 409 a conflict to re-read and retry, 410 an expired watch (relist);
no answer, 429 and 5xx are temporary (honouring ``Retry-After``); anything else is
permanent: retrying the same request will not help.
"""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from vpcnet.errors import (
    KubeConflict,
    KubePermanentError,
    KubeTemporaryError,
    NotFoundError,
    VpcnetError,
    WatchExpired,
)


def translate(e: ApiException) -> VpcnetError:
    retry_after = e.headers.get("Retry-After") if e.headers else None
    body = e.body.encode() if isinstance(e.body, str) else e.body
    return translate_status(int(e.status or 0), body, retry_after)


def translate_status(status: int, body: bytes | None, retry_after: str | None) -> VpcnetError:
    reason, message = "", ""
    if body:
        try:
            parsed = json.loads(body)
            reason = str(parsed.get("reason") or "")
            message = str(parsed.get("message") or "")
        except (ValueError, AttributeError):
            message = body[:300].decode(errors="replace")
    return status_error(status, reason, message, retry_after)


def status_error(status: int, reason: str, message: str, retry_after: str | None) -> VpcnetError:
    message = message or reason or f"HTTP {status}"
    if status == 404:
        return NotFoundError(message)
    if status == 409:
        return KubeConflict(status, reason or "Conflict", message)
    if status == 410:
        return WatchExpired(message)
    if status == 0 or status == 429 or status >= 500:
        delay: float | None = None
        if retry_after:
            try:
                delay = float(retry_after)
            except ValueError:
                delay = None
        return KubeTemporaryError(status, reason or "ServerError", message, delay=delay)
    return KubePermanentError(status, reason or "Invalid", message)
