"""The issuer's HTTP endpoint: ``POST /v1/node-credential`` with
``Authorization: Bearer <projected ServiceAccount token>``.

200 ``{"node", "username", "password", "ttl_seconds"}``; 401 for a token the apiserver
does not accept (expired, forged, other audience), 403 for a valid token that is not an
agent's on a node, 503 when Kubernetes or Redis cannot be reached (the agent retries).
Nothing the request says besides the token is used: there is no node parameter.

Production needs TLS (``ssl_context``, the Service's certificate): the token and the
password cross the network in this exchange. Plain HTTP is for loopback tests only.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vpcnet.credentials.errors import CredentialDenied, CredentialUnavailable
from vpcnet.credentials.issuer import CredentialIssuer
from vpcnet.credentials.wire import PATH, encode

log = logging.getLogger(__name__)

_MAX_TOKEN = 16 * 1024  # projected tokens are ~1 KiB; refuse anything absurd
_REQUEST_TIMEOUT = 10.0  # a client that stalls mid-request does not hold a thread


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = _REQUEST_TIMEOUT

    def do_POST(self) -> None:
        if self.path != PATH:
            self._answer(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {self.path}"})
            return
        self._drain_body()
        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN:
            self._answer(HTTPStatus.UNAUTHORIZED, {"error": "a bearer token is required"})
            return
        try:
            cred = self.server.issuer.issue(token)
        except CredentialDenied as e:
            log.warning("credential refused to %s: %s", self.client_address[0], e)
            self._answer(HTTPStatus(e.status), {"error": str(e)})
            return
        except CredentialUnavailable as e:
            # Details stay in the log: the caller is not authenticated yet.
            log.warning("credential not issued (retryable): %s", e)
            self._answer(HTTPStatus.SERVICE_UNAVAILABLE,
                         {"error": "the issuer cannot reach Kubernetes or Redis; retry"})
            return
        except Exception:
            log.exception("credential issue failed")
            self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
            return
        self._answer(HTTPStatus.OK, encode(cred))

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._answer(HTTPStatus.OK, {"ok": True})
        else:
            self._answer(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "POST only"})

    def _drain_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if 0 < length <= _MAX_TOKEN:
            self.rfile.read(length)
        elif length:
            self.close_connection = True  # never read: the connection is not reused

    def _answer(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.client_address[0], format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], issuer: CredentialIssuer,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.issuer = issuer
        self._ssl_context = ssl_context
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        if self._ssl_context is not None:
            # The handshake happens on the first read, in the request's thread: a client
            # that stalls it holds that thread (until the timeout), never the accept loop.
            sock.settimeout(_REQUEST_TIMEOUT)
            sock = self._ssl_context.wrap_socket(sock, server_side=True,
                                                 do_handshake_on_connect=False)
        return sock, addr


class CredentialServer:
    """Serves ``issuer`` on ``host:port`` (port 0: a free one) in a background thread."""

    def __init__(self, issuer: CredentialIssuer, host: str = "127.0.0.1", port: int = 0,
                 *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._httpd = _Server((host, port), issuer, ssl_context)
        self.scheme = "https" if ssl_context is not None else "http"
        self._thread: threading.Thread | None = None
        # Set once serve_forever runs or is about to: socketserver's shutdown() waits for
        # a serve_forever loop to end, forever when none was started (a signal before
        # the serve, or a caller that only built the server).
        self._serving = threading.Event()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self._httpd.server_address[0]
        return f"{self.scheme}://{host!s}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="credentials",
                                        daemon=True)
        self._serving.set()
        self._thread.start()

    def serve_forever(self) -> None:
        self._serving.set()
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._serving.is_set():
            self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
