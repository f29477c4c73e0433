"""HTTP front of the emulator: the kube-apiserver REST paths, discovery and watches.

A threaded HTTP/1.1 server (one thread per connection, keep-alive) so that many
long-lived watches and ordinary requests are served at once. Routing follows the
apiserver: ``/api/v1/...`` for the core group, ``/apis/<group>/<version>/...`` for the
others, ``namespaces/<ns>/`` for namespaced resources, ``/status`` subresources.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vpcnet_sim.kube import resources, status
from vpcnet_sim.kube.registry import Registry, Selector
from vpcnet_sim.kube.resources import ResourceType
from vpcnet_sim.kube.status import ApiStatusError
from vpcnet_sim.kube.watch import WatchRequest, WatchStream

log = logging.getLogger("vpcnet_sim.kube")

KUBE_VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.0-vpcnet-sim"}


@dataclass(frozen=True)
class ServerOptions:
    default_watch_timeout: float = 1800.0  # the apiserver's --min-request-timeout
    bookmark_interval: float = 60.0


@dataclass(frozen=True)
class Route:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool  # the deprecated /watch/ prefix


class KubeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], registry: Registry, options: ServerOptions) -> None:
        self.registry = registry
        self.options = options
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._watches = 0
        self._watches_done = threading.Condition()
        super().__init__(address, Handler)

    def watch_started(self) -> None:
        with self._watches_done:
            self._watches += 1

    def watch_ended(self) -> None:
        with self._watches_done:
            self._watches -= 1
            self._watches_done.notify_all()

    @property
    def open_watches(self) -> int:
        with self._watches_done:
            return self._watches

    def wait_for_watches(self, timeout: float) -> None:
        """Let closing watch streams write their final chunk before sockets go down."""
        with self._watches_done:
            self._watches_done.wait_for(lambda: self._watches == 0, timeout)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Headers and body leave in separate small writes: without NODELAY, Nagle's
        # algorithm and the client's delayed ACK add ~40 ms to every response.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Unblock every handler thread (idle keep-alive readers, watch writers)."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, [""])[-1].lower() in ("true", "1")


def _param(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    raw = _param(query, name)
    if raw in (None, ""):
        return default
    try:
        return int(str(raw))
    except ValueError as e:
        raise status.bad_request(f"invalid {name}: {raw!r}") from e


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: KubeHTTPServer
    server_version = "vpcnet-kube-sim"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- responses ------------------------------------------------------------------

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, code: int, obj: Any) -> None:
        self._send(code, json.dumps(obj, separators=(",", ":")).encode())

    def _send_error(self, err: ApiStatusError) -> None:
        self._send(err.code, err.body())

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # --- dispatch -------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        try:
            body = self._read_body()
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            self._route(method, url.path.rstrip("/") or "/", query, body)
        except ApiStatusError as err:
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug in the emulator: answer like the apiserver would
            log.exception("kube emulator: %s %s failed", method, self.path)
            self._send_error(status.internal(str(e)))

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> None:
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            self._send(200, b"ok", "text/plain; charset=utf-8")
            return
        if path == "/version":
            self._send_json(200, {**KUBE_VERSION, "gitCommit": "", "gitTreeState": "clean",
                                  "buildDate": "2025-01-01T00:00:00Z", "goVersion": "python3",
                                  "compiler": "cpython", "platform": "linux/amd64"})
            return
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"]:
            if len(parts) == 1:
                self._send_json(200, self._api_versions())
            elif parts[1] != "v1":
                raise status.route_not_found()
            elif len(parts) == 2:
                self._send_json(200, self._resource_list("", "v1"))
            else:
                self._resource(method, self._resolve("", "v1", parts[2:]), query, body)
            return
        if parts[:1] == ["apis"]:
            if len(parts) == 1:
                self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                      "groups": [self._group(g) for g in resources.GROUPS]})
            elif parts[1] not in resources.GROUPS:
                raise status.route_not_found()
            elif len(parts) == 2:
                self._send_json(200, {"kind": "APIGroup", "apiVersion": "v1", **self._group(parts[1])})
            elif parts[2] not in resources.GROUPS[parts[1]]:
                raise status.route_not_found()
            elif len(parts) == 3:
                self._send_json(200, self._resource_list(parts[1], parts[2]))
            else:
                self._resource(method, self._resolve(parts[1], parts[2], parts[3:]), query, body)
            return
        raise status.route_not_found()

    # --- discovery ------------------------------------------------------------------

    def _api_versions(self) -> dict[str, Any]:
        host, port = str(self.server.server_address[0]), self.server.server_address[1]
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{host}:{port}"}]}

    @staticmethod
    def _group(name: str) -> dict[str, Any]:
        versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in resources.GROUPS[name]]
        return {"name": name, "versions": versions, "preferredVersion": versions[0]}

    @staticmethod
    def _resource_list(group: str, version: str) -> dict[str, Any]:
        entries: list[dict[str, Any]] = []
        for rt in resources.ALL:
            if rt.group == group and rt.version == version:
                entries += rt.discovery()
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version, "resources": entries}

    # --- resources ------------------------------------------------------------------

    @staticmethod
    def _resolve(group: str, version: str, segments: list[str]) -> Route:
        watch_path = bool(segments) and segments[0] == "watch"
        if watch_path:
            segments = segments[1:]
        namespace = None
        # namespaces/<ns>/<plural>/... but not namespaces/<name>/status (the Namespace itself)
        if len(segments) >= 3 and segments[0] == "namespaces" and segments[2] not in ("status", "finalize"):
            namespace, segments = segments[1], segments[2:]
        if not segments or len(segments) > 3:
            raise status.route_not_found()
        rt = resources.BY_PATH.get((group, version, segments[0]))
        if rt is None:
            raise status.route_not_found()
        name = segments[1] if len(segments) > 1 else None
        sub = segments[2] if len(segments) > 2 else None
        if sub is not None and not (sub == "status" and rt.has_status):
            raise status.route_not_found()
        if namespace is not None and not rt.namespaced:
            raise status.route_not_found()
        if rt.namespaced and namespace is None and name is not None:
            raise status.route_not_found()
        return Route(rt, namespace, name, sub, watch_path)

    def _resource(self, method: str, route: Route, query: dict[str, list[str]], body: bytes) -> None:
        registry = self.server.registry
        rt, ns, name = route.rt, route.namespace, route.name
        dry_run = "All" in query.get("dryRun", [])
        if name is None:
            selector = Selector.parse(rt, ns, _param(query, "labelSelector"), _param(query, "fieldSelector"))
            if method == "GET" and (route.watch_path or _flag(query, "watch")):
                self._watch(selector, query)
            elif method == "GET":
                result = registry.list_collection(rt, selector, limit=_int_param(query, "limit", 0),
                                       continue_token=_param(query, "continue"))
                self._send_json(200, result)
            elif method == "POST" and (ns is not None or not rt.namespaced):
                self._send_json(201, registry.create(rt, ns, _json_body(body), dry_run=dry_run))
            elif method == "DELETE":
                self._send_json(200, registry.delete_collection(rt, selector, _delete_options(body, query),
                                                                dry_run=dry_run))
            else:
                raise status.method_not_allowed(method)
            return
        if method == "GET":
            self._send_json(200, registry.get(rt, ns, name))
        elif method == "PUT":
            code, obj = registry.update(rt, ns, name, _json_body(body), subresource=route.subresource,
                                        dry_run=dry_run)
            self._send_json(code, obj)
        elif method == "PATCH":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            self._send_json(200, registry.patch(rt, ns, name, content_type, body,
                                                subresource=route.subresource, dry_run=dry_run))
        elif method == "DELETE" and route.subresource is None:
            code, obj = registry.delete(rt, ns, name, _delete_options(body, query), dry_run=dry_run)
            self._send_json(code, obj)
        else:
            raise status.method_not_allowed(method)

    # --- watch ----------------------------------------------------------------------

    def _disconnected(self) -> bool:
        """True once the client closed its end (a readable socket with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except (OSError, ValueError):
            return True

    def _watch(self, selector: Selector, query: dict[str, list[str]]) -> None:
        options = self.server.options
        timeout = float(_int_param(query, "timeoutSeconds", 0)) or options.default_watch_timeout
        initial = _flag(query, "sendInitialEvents")
        bookmarks = _flag(query, "allowWatchBookmarks")
        if initial and (not bookmarks or _param(query, "resourceVersionMatch") != "NotOlderThan"):
            raise status.invalid_object(
                "ListOptions", "meta.k8s.io", "", [status.forbidden(
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden unless allowWatchBookmarks=true and "
                    "resourceVersionMatch=NotOlderThan")],
            )
        request = WatchRequest(selector, _param(query, "resourceVersion"), timeout, bookmarks, initial)
        stream = WatchStream(self.server.registry, request,
                             bookmark_interval=options.bookmark_interval,
                             is_disconnected=self._disconnected)
        self.server.watch_started()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache, private")
            self.end_headers()
            for line in stream:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away (broken pipe, reset)
            self.close_connection = True
        finally:
            self.server.watch_ended()


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as e:
        raise status.bad_request(f"the body of the request was in an unknown format: {e}") from e


def _delete_options(body: bytes, query: dict[str, list[str]]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if body.strip():
        parsed = _json_body(body)
        if isinstance(parsed, dict):
            options = parsed
    if "gracePeriodSeconds" in query:
        options["gracePeriodSeconds"] = _int_param(query, "gracePeriodSeconds", 0)
    if "propagationPolicy" in query:
        options["propagationPolicy"] = _param(query, "propagationPolicy")
    return options
