"""The HTTP core every resource part shares: one connection, JSON in and out.

The official client provides authentication and the HTTP pool; requests and responses
are plain JSON (no SDK models are built), and library errors leave this module as
:mod:`vpcnet.errors` types.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from vpcnet.errors import KubeTemporaryError
from vpcnet.kube.client.errors import translate, translate_status

MERGE_PATCH = "application/merge-patch+json"
LIST_PAGE = 500


class KubeApi:
    """The connection and the two request primitives the resource parts build on."""

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        component: str = "vpcnet",
        event_namespace: str = "default",
        request_timeout: float = 10.0,
    ) -> None:
        self._api = api
        self.component = component
        self.event_namespace = event_namespace
        self._timeout = request_timeout
        self._host = socket.gethostname()

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def _open(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | tuple[float, float] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        request = self._api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            resp = self._api.call_api(*request, _request_timeout=timeout or self._timeout)
        except ApiException as e:
            raise translate(e) from e
        except urllib3.exceptions.HTTPError as e:
            raise KubeTemporaryError(0, "ConnectionError", f"{method} {path}: {e}") from e
        if not 200 <= resp.status <= 299:
            try:
                data = resp.read()  # type: ignore[no-untyped-call]
            except urllib3.exceptions.HTTPError:
                data = b""
            finally:
                resp.response.release_conn()
            retry_after = resp.getheader("Retry-After")  # type: ignore[no-untyped-call]
            raise translate_status(resp.status, data, retry_after)
        raw: urllib3.BaseHTTPResponse = resp.response
        return raw

    def _json(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        resp = self._open(method, path, query=query, body=body, content_type=content_type)
        try:
            data = resp.data
        except urllib3.exceptions.HTTPError as e:
            raise KubeTemporaryError(0, "ConnectionError", f"{method} {path}: {e}") from e
        finally:
            resp.release_conn()
        try:
            return json.loads(data) if data else {}
        except ValueError as e:
            raise KubeTemporaryError(resp.status, "BadResponse", f"{method} {path}: {e}") from e
