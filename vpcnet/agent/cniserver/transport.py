"""The unix socket the CNI plugin talks to: binding it, framing, the serving loop.

A threaded unix-socket server (socket mode 0600, one request per connection, size- and
time-limited). What a request means is not decided here: each one's bytes go to
``answer``, which returns the reply; a raw frame of the launcher's fast path (it starts
with ``inprocess.REQ_MAGIC``, a NUL byte, so never JSON) goes to ``raw_answer``, which
returns the raw reply bytes. A failure of the serving loop restarts it; should
the serving thread end any other way than by ``stop``, the socket is closed and
removed so that clients fail fast instead of waiting on it.
"""

from __future__ import annotations

import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vpcnet.agent.cniserver import inprocess
from vpcnet.cni import protocol as p
from vpcnet.errors import VpcnetError

log = logging.getLogger("vpcnet.agent.cni")

READ_TIMEOUT_SECONDS = 10.0
RESTART_SECONDS = 1.0  # between a failed serving loop and its restart

Answer = Callable[[bytes], dict[str, Any]]
RawAnswer = Callable[[bytes], bytes]
# What is read of one request: a JSON one is refused above MAX_REQUEST_BYTES once read,
# a raw frame carries the plugin's stdin (up to MAX_REQUEST_BYTES + 1) and its env.
READ_LIMIT = max(p.MAX_REQUEST_BYTES, inprocess.MAX_FRAME_BYTES)


class _Handler(socketserver.BaseRequestHandler):
    server: _UnixServer

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(READ_TIMEOUT_SECONDS)
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                size += len(chunk)
                chunks.append(chunk)
                if size > READ_LIMIT:
                    break
        except OSError as e:
            log.warning("reading a CNI request failed: %s", e)
            return
        raw = b"".join(chunks)
        if raw.startswith(inprocess.REQ_MAGIC):
            raw_answer = self.server.raw_answer
            if size > inprocess.MAX_FRAME_BYTES or raw_answer is None:
                data = inprocess.FALLBACK_MAGIC  # the launcher execs the plugin
            else:
                data = raw_answer(raw)
        elif size > p.MAX_REQUEST_BYTES:
            data = p.dumps(p.error_reply(p.ERR_DECODE, "request too large", f"> {p.MAX_REQUEST_BYTES} bytes")).encode()
        else:
            data = p.dumps(self.server.answer(raw)).encode()
        try:
            conn.sendall(data)
        except OSError as e:
            # The plugin gave up (timeout, killed): for ADD the runtime will DEL.
            log.warning("answering a CNI request failed: %s", e)


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 1024  # a burst of pods on a fresh node
    answer: Answer
    raw_answer: RawAnswer | None


class UnixSocketServer:
    """The listening socket at ``path``, each request's bytes answered by ``answer`` (raw
    frames by ``raw_answer``; without one, they are answered "fallback")."""

    def __init__(self, path: Path, answer: Answer, raw_answer: RawAnswer | None = None) -> None:
        self.path = path
        self.answer = answer
        self.raw_answer = raw_answer
        self._server: _UnixServer | None = None
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._state_lock = threading.Lock()
        self._serving = False
        self._socket_id: tuple[int, int] | None = None  # (st_dev, st_ino) of our socket
        self.failure = ""  # why the server stopped serving without stop ("" = it did not)
        self.restarts = 0  # times the serving loop failed and was started again

    def bind(self) -> None:
        """Create the listening socket (mode 0600); fails if another agent serves it."""
        if self._server is not None:
            return
        path = self.path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.exists() and _answers(path):
            raise VpcnetError(f"another agent is serving {path}")
        # Bind under a temporary name, restrict it, then rename it into place: the
        # final path never exists with a wider mode, and a stale file is replaced.
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        server = _UnixServer(str(tmp), _Handler, bind_and_activate=False)
        try:
            server.server_bind()
            os.chmod(tmp, 0o600)
            server.server_activate()
            os.replace(tmp, path)
            st = os.stat(path)
            self._socket_id = (st.st_dev, st.st_ino)
        except OSError:
            server.server_close()
            tmp.unlink(missing_ok=True)
            raise
        server.answer = self.answer
        server.raw_answer = self.raw_answer
        self._server = server
        self._bound.set()

    def serve_forever(self, prepare: Callable[[], None]) -> None:
        """Bind (if needed), ``prepare``, then serve until ``stop``.

        A failure of the serving loop restarts it. Should this thread end any other way
        than by ``stop``, the socket is closed and removed, so that no client waits out
        its timeout on a socket nobody serves (ADD fails at once with 11, DEL is
        spooled), and ``failure`` says why.
        """
        self.bind()
        try:
            prepare()
            self._serve()
        except BaseException as e:
            self._abandon(f"{type(e).__name__}: {e}")
            raise
        if not self._stop.is_set():
            self._abandon("the serving loop ended")

    @property
    def serving(self) -> bool:
        """True while the loop accepts connections."""
        with self._state_lock:
            return self._serving

    def _serve(self) -> None:
        server = self._server
        assert server is not None
        while True:
            with self._state_lock:
                if self._stop.is_set():
                    return
                self._serving = True
            try:
                server.serve_forever(poll_interval=0.2)
            except Exception:
                log.exception("the CNI server loop failed; restarting it")
                self.restarts += 1
            else:
                return  # stop() asked for it
            finally:
                with self._state_lock:
                    self._serving = False
            if self._stop.wait(RESTART_SECONDS):
                return

    def _abandon(self, why: str) -> None:
        """Nobody will serve the socket any more: say so, and make clients fail fast."""
        self.failure = why
        log.critical("the CNI server stopped serving: %s", why)
        server = self._server
        if server is not None:
            server.server_close()
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._socket_id:  # never another agent's
                self.path.unlink()
        except OSError:
            pass

    def wait_bound(self, timeout: float | None = None) -> bool:
        return self._bound.wait(timeout)

    def stop(self) -> bool:
        """End the serving loop (requests in flight go on); False if never bound."""
        with self._state_lock:
            self._stop.set()
            serving = self._serving
        server = self._server
        if server is None:
            return False
        if serving:  # socketserver's shutdown() waits for a loop that must have started
            server.shutdown()
        return True

    def close(self) -> None:
        """Close and remove the socket (after ``stop``)."""
        server = self._server
        if server is None:
            return
        server.server_close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        self._server = None


def _answers(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()
