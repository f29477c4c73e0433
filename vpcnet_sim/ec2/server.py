"""The emulator's WSGI app and threaded HTTP server.

One port serves three things: the EC2 Query API (``POST /``), the admin API
(``/_sim/...``, JSON, never throttled or counted) and the instance metadata emulator
(``/_imds/<instance-id>/...``).

An EC2 call goes: count -> throttle (per-action token bucket, 503) -> injected fault ->
latency sleep -> backend under the lock -> "after" fault. The sleep happens outside the
lock so concurrent callers overlap as they do on AWS, while moto's backend (not
thread-safe) only ever sees one request at a time.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from moto.core.request import Request as MotoRequest
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wrappers import Request

from vpcnet_sim.ec2 import admin, imds
from vpcnet_sim.ec2.errors import SimApiError, error_body
from vpcnet_sim.ec2.responses import SimEc2Response
from vpcnet_sim.ec2.throttle import bucket_key

if TYPE_CHECKING:
    from vpcnet_sim.ec2.emulator import Ec2Emulator

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]

_CODE = re.compile(rb"<Code>([^<]+)</Code>")
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 500: "Internal Server Error", 503: "Service Unavailable"}
# Parameters that make a Describe call "filtered or paginated" for throttling purposes;
# naming explicit ids (InstanceId.1, NetworkInterfaceId.1) counts as a filter.
_FILTERING = re.compile(r"^(Filter\.\d+\.|MaxResults$|NextToken$|\w+Id\.\d+$)")


class _ServerRequest(MotoRequest):
    from_wsgi_server = True  # werkzeug adds the Date header itself


class QuietHandler(WSGIRequestHandler):
    """No per-request access log: tens of thousands of calls would drown real logs."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def _respond(start: StartResponse, status: int, body: bytes, content_type: str,
             extra: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra]
    start(f"{status} {_REASONS.get(status, 'Status')}", headers)
    return [body]


def _is_filtered(form: Any) -> bool:
    return any(_FILTERING.match(k) for k in form.keys())


class Ec2App:
    """WSGI callable bound to one emulator."""

    def __init__(self, emu: Ec2Emulator) -> None:
        self.emu = emu

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "/")
        if path.startswith("/_sim/"):
            return self._admin(environ, start, path)
        if path.startswith("/_imds/"):
            return self._imds(environ, start, path)
        return self._ec2(environ, start)

    # -- EC2 -------------------------------------------------------------------------

    def _error(self, start: StartResponse, action: str, err: SimApiError,
               request_id: str) -> list[bytes]:
        self.emu.call_counters.error(action, err.code)
        body = error_body(err.code, err.message, request_id)
        return _respond(start, err.status, body, "text/xml",
                        [("x-amzn-RequestId", request_id)])

    def _ec2(self, environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        received = time.monotonic()
        request = _ServerRequest(environ)
        action = request.form.get("Action") or request.args.get("Action") or ""
        try:
            return self._ec2_answer(request, action, start)
        finally:
            self.emu.call_log.add(action or "-", received)

    def _ec2_answer(self, request: _ServerRequest, action: str,
                    start: StartResponse) -> list[bytes]:
        emu = self.emu
        request_id = str(uuid.uuid4())
        form = request.form
        if not action:
            err = SimApiError("MissingAction", "The request must contain the parameter Action")
            return self._error(start, "-", err, request_id)
        emu.call_counters.call(action)
        cfg = emu.config
        if cfg.throttle and not emu.throttler.allow(bucket_key(action, filtered=_is_filtered(form))):
            return self._error(start, action, SimApiError("RequestLimitExceeded", "Request limit exceeded."), request_id)
        fault = emu.faults.pick(action, after=False)
        if fault is not None:
            return self._error(start, action, fault, request_id)
        delay = cfg.latency_for(action).sample(emu.rng)
        if delay > 0:
            time.sleep(delay)  # outside the lock: concurrent calls overlap as on AWS
        with emu.lock:
            emu.backend.settle()
            try:
                status, headers, body = SimEc2Response(emu.backend)._dispatch(request)
            except SimApiError as e:
                return self._error(start, action, e, request_id)
            except NotImplementedError as e:
                err = SimApiError("InvalidAction", f"The action {action} is not valid for this web service. ({e})")
                return self._error(start, action, err, request_id)
            except Exception:
                log.exception("EC2 emulator failed on %s", action)
                err = SimApiError("InternalError", "An internal error has occurred.")
                return self._error(start, action, err, request_id)
        after = emu.faults.pick(action, after=True)
        if after is not None:
            return self._error(start, action, after, request_id)
        raw = body.encode() if isinstance(body, str) else bytes(body or b"")
        raw = raw.replace(b"<requestId>request-id</requestId>",
                          b"<requestId>" + request_id.encode() + b"</requestId>", 1)
        if status >= 400:
            m = _CODE.search(raw)
            emu.call_counters.error(action, m.group(1).decode() if m else str(status))
        extra = [(k, str(v)) for k, v in headers.items()
                 if k.lower() not in ("status", "content-type", "content-length", "date", "server")]
        return _respond(start, status, raw, "text/xml;charset=UTF-8", extra)

    # -- admin and IMDS ----------------------------------------------------------------

    def _admin(self, environ: dict[str, Any], start: StartResponse, path: str) -> list[bytes]:
        request = Request(environ)
        payload: Any = None
        # raw body whatever the Content-Type (curl -d sends form-urlencoded)
        raw = request.get_data() if request.method in ("POST", "PUT") else b""
        if raw:
            try:
                payload = json.loads(raw)
            except ValueError:
                return _respond(start, 400, b'{"error": "body is not JSON"}', "application/json")
        status, result = admin.handle(self.emu, request.method, path[len("/_sim/"):], payload)
        body = json.dumps(result, sort_keys=True).encode()
        return _respond(start, status, body, "application/json")

    def _imds(self, environ: dict[str, Any], start: StartResponse, path: str) -> list[bytes]:
        request = Request(environ)
        rest = path[len("/_imds/"):]
        instance_id, _, sub = rest.partition("/")
        with self.emu.lock:
            self.emu.backend.settle()
            status, text = imds.handle(
                self.emu.backend, self.emu.imds_tokens, instance_id, sub, request.method,
                {k.lower(): v for k, v in request.headers.items()},
            )
        return _respond(start, status, text.encode(), "text/plain")


class _Server(ThreadedWSGIServer):
    # A join storm opens hundreds of connections at once; the default backlog of 128
    # would turn the excess into SYN retries (1 s stalls) instead of queueing them.
    request_queue_size = 1024


class HttpServer:
    """A threaded werkzeug server running in a background thread."""

    def __init__(self, app: Ec2App, host: str, port: int) -> None:
        self._server = _Server(host, port, app, handler=QuietHandler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, name="ec2-emulator", daemon=True
        )
        self._thread.start()

    def serve_forever(self) -> None:
        # a short poll interval keeps stop() (and test teardown) quick
        self._server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
