"""Watching nodes: one long chunked response, read line by line as events arrive."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Mapping
from typing import Any

import urllib3

from vpcnet.errors import KubeTemporaryError
from vpcnet.kube.client.api import KubeApi
from vpcnet.kube.client.errors import status_error
from vpcnet.kube.types import NodeObj, NodeWatchEvent, WatchEventType


class NodeWatchApi(KubeApi):
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
                event = parse_watch_line(line)
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


def parse_watch_line(line: bytes) -> NodeWatchEvent | None:
    """One watch event; None for an event type this version does not know."""
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
        raise status_error(code, str(obj.get("reason") or ""), str(obj.get("message") or ""), None)
    try:
        etype = WatchEventType(kind)
    except ValueError:
        return None  # an event type this version does not know: skip, as client-go does
    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    if etype is WatchEventType.BOOKMARK:
        return NodeWatchEvent(type=etype, resource_version=rv)
    return NodeWatchEvent(type=etype, resource_version=rv, node=NodeObj.from_api(obj))
