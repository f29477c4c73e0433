"""The Kubernetes adapter: the only module of vpcnet that imports ``kubernetes``.

The official client provides configuration (kubeconfig or in-cluster service account),
authentication and the HTTP pool; requests and responses are plain JSON converted to
the values of :mod:`vpcnet.kube.types` right here, so nothing else sees SDK objects and
no time is spent building SDK models. Library errors become :mod:`vpcnet.errors` types.

Writes that replace a list (taints) carry the resourceVersion that was read, so a
concurrent writer makes the server answer 409 and we re-read and retry, instead of
silently dropping someone else's taint.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from vpcnet.domain import NodeRef
from vpcnet.errors import (
    ConfigError,
    KubeConflict,
    KubePermanentError,
    KubeTemporaryError,
    NotFoundError,
    VpcnetError,
    WatchExpired,
)
from vpcnet.kube.tokenreview import TokenIdentity, identity_from_review, review_request
from vpcnet.kube.types import (
    STATUS_ANNOTATION,
    EventType,
    KubeEvent,
    Lease,
    LeaseSpec,
    NodeObj,
    NodeWatchEvent,
    PodObj,
    Taint,
    WatchEventType,
    format_time,
)
from vpcnet.settings import Settings

T = TypeVar("T")

MERGE_PATCH = "application/merge-patch+json"
_LIST_PAGE = 500
_MAX_MESSAGE = 1024  # the apiserver truncates Event messages beyond this anyway
_CONFLICT_RETRIES = 10


class KubeClient:
    """Typed, converging operations on Nodes, Events, Leases and Pods."""

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

    @classmethod
    def from_settings(cls, settings: Settings, *, component: str = "vpcnet") -> KubeClient:
        """Kubeconfig when ``settings.kubeconfig`` is set, else the pod's service account."""
        cfg = k8s.Configuration()
        try:
            if settings.kubeconfig:
                k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=settings.kubeconfig, client_configuration=cfg, persist_config=False
                )
            else:
                k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        except (ConfigException, OSError) as e:
            where = settings.kubeconfig or "in-cluster service account"
            raise ConfigError(f"cannot load Kubernetes configuration ({where}): {e}") from e
        api = k8s.ApiClient(cfg)
        api.user_agent = f"vpcnet/{component}"
        return cls(api, component=component, event_namespace=settings.event_namespace)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    # ------------------------------------------------------------------ HTTP core

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
            raise _translate(e) from e
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
            raise _translate_status(resp.status, data, retry_after)
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

    # ------------------------------------------------------------------ nodes

    def list_nodes(self) -> tuple[list[NodeObj], str]:
        """Every node, and the list's resourceVersion to start a watch from (paged)."""
        nodes: list[NodeObj] = []
        cont = ""
        while True:
            query = [("limit", str(_LIST_PAGE))]
            if cont:
                query.append(("continue", cont))
            try:
                page = self._json("GET", "/api/v1/nodes", query=query)
            except WatchExpired:
                # The continue token expired mid-list: start over for a consistent snapshot.
                nodes, cont = [], ""
                continue
            nodes.extend(NodeObj.from_api(item) for item in page.get("items") or ())
            meta = page.get("metadata") or {}
            cont = str(meta.get("continue") or "")
            if not cont:
                return nodes, str(meta.get("resourceVersion") or "")

    def watch_nodes(self, resource_version: str, *, timeout_seconds: int = 300) -> NodeWatch:
        """Watch nodes from ``resource_version``; iterate the result, ``close()`` to stop.

        Raises :class:`WatchExpired` (410 Gone) when the version is too old: relist.
        The server ends the watch after ``timeout_seconds``; the caller re-watches from
        the last version it saw (bookmarks keep that version fresh).
        """
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        resp = self._open(
            "GET", "/api/v1/nodes", query=query, timeout=(5.0, timeout_seconds + 15.0)
        )
        return NodeWatch(resp)

    def read_node(self, name: str) -> NodeObj | None:
        """The node, or None when it does not exist."""
        try:
            return NodeObj.from_api(self._json("GET", f"/api/v1/nodes/{name}"))
        except NotFoundError:
            return None

    def get_node(self, name: str) -> NodeRef | None:
        """The node as a domain value; None when it does not exist.

        Raises :class:`ConfigError` when the node has no (or a non-AWS) providerID:
        vpcnet cannot act on it and retrying will not change that.
        """
        node = self.read_node(name)
        if node is None:
            return None
        try:
            return node.to_ref()
        except ValueError as e:
            raise ConfigError(f"node {name}: {e}") from e

    def ensure_taint(self, node: str, key: str, effect: str, value: str = "") -> bool:
        """Converge: the node carries taint ``key:effect``. True if a write was needed."""
        want = Taint(key=key, effect=effect, value=value)

        def change(taints: tuple[Taint, ...]) -> tuple[Taint, ...] | None:
            if any(t.key == key and t.effect == effect for t in taints):
                return None
            return (*taints, want)

        return self._update_taints(node, change, missing_ok=False)

    def remove_taint(self, node: str, key: str, effect: str | None = None) -> bool:
        """Idempotent: drop taint ``key`` (of ``effect`` if given); a missing node is fine."""

        def change(taints: tuple[Taint, ...]) -> tuple[Taint, ...] | None:
            kept = tuple(t for t in taints if not (t.key == key and effect in (None, t.effect)))
            return None if len(kept) == len(taints) else kept

        return self._update_taints(node, change, missing_ok=True)

    def _update_taints(
        self,
        node: str,
        change: Callable[[tuple[Taint, ...]], tuple[Taint, ...] | None],
        *,
        missing_ok: bool,
    ) -> bool:
        for attempt in range(_CONFLICT_RETRIES):
            current = self.read_node(node)
            if current is None:
                if missing_ok:
                    return False
                raise NotFoundError(f"node {node} not found")
            taints = change(current.taints)
            if taints is None:
                return False
            patch = {
                # Optimistic concurrency: the server rejects the patch with 409 if the node
                # changed since we read it, so we never overwrite a concurrent taint edit.
                "metadata": {"resourceVersion": current.resource_version},
                "spec": {"taints": [t.to_api() for t in taints] or None},
            }
            try:
                self._json("PATCH", f"/api/v1/nodes/{node}", body=patch, content_type=MERGE_PATCH)
                return True
            except KubeConflict:
                _conflict_pause(attempt)
            except NotFoundError:
                if missing_ok:
                    return False
                raise
        raise KubeConflict(409, "Conflict", f"node {node}: taints kept changing under us")

    def set_labels(self, node: str, labels: Mapping[str, str | None]) -> None:
        """Merge ``labels`` into the node's labels; a None value removes that label."""
        self._patch_metadata_map(node, "labels", labels)

    def set_annotations(self, node: str, annotations: Mapping[str, str | None]) -> None:
        """Merge ``annotations`` into the node's; a None value removes that annotation."""
        self._patch_metadata_map(node, "annotations", annotations)

    def set_status_summary(self, node: str, summary: Mapping[str, Any]) -> None:
        """Publish vpcnet's view of the node (phase, ENIs, IPs, error) as an annotation."""
        self.set_annotations(node, {STATUS_ANNOTATION: json.dumps(dict(summary), sort_keys=True)})

    def _patch_metadata_map(self, node: str, field: str, values: Mapping[str, str | None]) -> None:
        if not values:
            return
        # A merge patch of a map touches only the given keys: no read, no race.
        patch = {"metadata": {field: dict(values)}}
        self._json("PATCH", f"/api/v1/nodes/{node}", body=patch, content_type=MERGE_PATCH)

    # ------------------------------------------------------------------ events

    def emit_event(
        self, node_name: str, reason: str, message: str, type: str = EventType.NORMAL
    ) -> None:
        """Record a core/v1 Event on the node, aggregated like kubelet's recorder.

        The Event's name is derived from (node, reason, type, message), so a repeat of the
        same event, from any replica or worker, bumps ``count`` and ``lastTimestamp`` of
        the one Event instead of creating a new object per occurrence.
        """
        message = message[:_MAX_MESSAGE]
        digest = hashlib.sha256(f"{type}\0{reason}\0{message}".encode()).hexdigest()[:16]
        name = f"{node_name}.vpcnet.{digest}"
        ns = self.event_namespace
        now = format_time(datetime.now(UTC))
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            # kubelet's convention (and what `kubectl describe node` matches on): a Node's
            # event reference uses the node name as its UID.
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Node",
                "name": node_name,
                "uid": node_name,
            },
            "reason": reason,
            "message": message,
            "type": str(type),
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": self.component, "host": self._host},
            "reportingComponent": f"vpcnet.io/{self.component}",
            "reportingInstance": self._host,
        }
        path = f"/api/v1/namespaces/{ns}/events"
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._json("POST", path, body=body)
                return
            except KubeConflict:
                pass  # it exists: aggregate into it
            try:
                existing = self._json("GET", f"{path}/{name}")
            except NotFoundError:
                continue  # expired between our create and read: create again
            meta = existing.get("metadata") or {}
            patch = {
                "metadata": {"resourceVersion": str(meta.get("resourceVersion", ""))},
                "count": int(existing.get("count") or 1) + 1,
                "lastTimestamp": now,
            }
            try:
                self._json("PATCH", f"{path}/{name}", body=patch, content_type=MERGE_PATCH)
                return
            except KubeConflict:
                _conflict_pause(attempt)
            except NotFoundError:
                continue
        raise KubeConflict(409, "Conflict", f"event {name}: kept changing under us")

    def list_node_events(self, node_name: str) -> list[KubeEvent]:
        """Events about the node in the event namespace, oldest first."""
        query = [("fieldSelector", f"involvedObject.kind=Node,involvedObject.name={node_name}")]
        data = self._json("GET", f"/api/v1/namespaces/{self.event_namespace}/events", query=query)
        events = []
        for item in data.get("items") or ():
            ref = item.get("involvedObject") or {}
            # Filter here too: a server may ignore field selectors it does not index.
            if ref.get("kind") == "Node" and ref.get("name") == node_name:
                events.append(KubeEvent.from_api(item))
        events.sort(key=lambda e: (e.last_timestamp or datetime.min.replace(tzinfo=UTC), e.name))
        return events

    # ------------------------------------------------------------------ leases

    def _lease_path(self, namespace: str, name: str = "") -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return f"{base}/{name}" if name else base

    def get_lease(self, namespace: str, name: str) -> Lease | None:
        try:
            return Lease.from_api(self._json("GET", self._lease_path(namespace, name)))
        except NotFoundError:
            return None

    def create_lease(self, namespace: str, name: str, spec: LeaseSpec) -> Lease:
        """Create the Lease; :class:`KubeConflict` when someone else created it first."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec.to_api(),
        }
        return Lease.from_api(self._json("POST", self._lease_path(namespace), body=body))

    def update_lease(self, lease: Lease, spec: LeaseSpec) -> Lease:
        """Replace the Lease's spec if it is still at ``lease.resource_version`` (else 409)."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": lease.name,
                "namespace": lease.namespace,
                "resourceVersion": lease.resource_version,
            },
            "spec": spec.to_api(),
        }
        path = self._lease_path(lease.namespace, lease.name)
        return Lease.from_api(self._json("PUT", path, body=body))

    # ------------------------------------------------------------------ tokens

    def review_token(self, token: str, audiences: Sequence[str]) -> TokenIdentity:
        """Who ``token`` belongs to, by the apiserver's TokenReview, if it is valid for one
        of ``audiences``; :class:`TokenRejected` otherwise."""
        review = self._json(
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            body=review_request(token, audiences),
        )
        return identity_from_review(review, audiences)

    # ------------------------------------------------------------------ pods

    def list_pods(self, node_name: str | None = None) -> list[PodObj]:
        """Pods in all namespaces, only those scheduled to ``node_name`` if given."""
        pods: list[PodObj] = []
        cont = ""
        while True:
            query = [("limit", str(_LIST_PAGE))]
            if node_name:
                query.append(("fieldSelector", f"spec.nodeName={node_name}"))
            if cont:
                query.append(("continue", cont))
            page = self._json("GET", "/api/v1/pods", query=query)
            for item in page.get("items") or ():
                pod = PodObj.from_api(item)
                if node_name is None or pod.node_name == node_name:
                    pods.append(pod)
            cont = str((page.get("metadata") or {}).get("continue") or "")
            if not cont:
                return pods


class NodeWatch:
    """An open node watch: iterate for events; ``close()`` (any thread) to stop early."""

    def __init__(self, resp: urllib3.BaseHTTPResponse) -> None:
        self._resp = resp
        self._closed = False

    def __enter__(self) -> NodeWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[NodeWatchEvent]:
        try:
            for line in _iter_lines(self._resp):
                event = _parse_watch_line(line)
                if event is not None:
                    yield event
        except (urllib3.exceptions.HTTPError, OSError) as e:
            if self._closed:
                return
            raise KubeTemporaryError(0, "WatchBroken", f"node watch ended: {e}") from e
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Shut the socket down first: it unblocks a reader sitting in recv() in another
        # thread, which close() alone does not do.
        conn = getattr(self._resp, "connection", None)
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self._resp.close()
        except (OSError, urllib3.exceptions.HTTPError):
            pass


def _iter_lines(resp: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    buf = bytearray()
    # amt=None yields each chunk of the chunked watch response as soon as it arrives.
    for chunk in resp.stream(amt=None, decode_content=True):
        buf.extend(chunk)
        while (nl := buf.find(b"\n")) != -1:
            line = bytes(buf[:nl]).strip()
            del buf[: nl + 1]
            if line:
                yield line
    if buf.strip():
        yield bytes(buf).strip()


def _parse_watch_line(line: bytes) -> NodeWatchEvent | None:
    try:
        raw = json.loads(line)
        kind = str(raw["type"])
        obj: Mapping[str, Any] = raw.get("object") or {}
    except (ValueError, KeyError, TypeError) as e:
        raise KubeTemporaryError(
            0, "BadWatchEvent", f"unparsable watch event: {line[:200]!r}"
        ) from e
    if kind == "ERROR":
        code = int(obj.get("code") or 0)
        raise _status_error(code, str(obj.get("reason") or ""), str(obj.get("message") or ""), None)
    try:
        etype = WatchEventType(kind)
    except ValueError:
        return None  # an event type this version does not know: skip, as client-go does
    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    if etype is WatchEventType.BOOKMARK:
        return NodeWatchEvent(type=etype, resource_version=rv)
    return NodeWatchEvent(type=etype, resource_version=rv, node=NodeObj.from_api(obj))


def _conflict_pause(attempt: int) -> None:
    # Small jittered backoff so racing writers spread out instead of colliding again.
    time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))


def _translate(e: ApiException) -> VpcnetError:
    retry_after = e.headers.get("Retry-After") if e.headers else None
    body = e.body.encode() if isinstance(e.body, str) else e.body
    return _translate_status(int(e.status or 0), body, retry_after)


def _translate_status(status: int, body: bytes | None, retry_after: str | None) -> VpcnetError:
    reason, message = "", ""
    if body:
        try:
            parsed = json.loads(body)
            reason = str(parsed.get("reason") or "")
            message = str(parsed.get("message") or "")
        except (ValueError, AttributeError):
            message = body[:300].decode(errors="replace")
    return _status_error(status, reason, message, retry_after)


def _status_error(status: int, reason: str, message: str, retry_after: str | None) -> VpcnetError:
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
