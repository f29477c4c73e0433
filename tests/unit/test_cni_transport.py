"""The CNI socket on its own (``UnixSocketServer``), with a plain ``answer`` in place of the
agent's commands: mode, framing, size limit, one agent per socket, and a socket nobody
serves never left behind."""

from __future__ import annotations

import json
import os
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vpcnet.agent.cniserver.transport import UnixSocketServer
from vpcnet.cni import protocol as p
from vpcnet.errors import VpcnetError


@pytest.fixture
def sock_path() -> Iterator[Path]:
    # Not tmp_path: a unix socket's path must stay under 108 bytes.
    with tempfile.TemporaryDirectory(prefix="vpcnet-t-") as d:
        yield Path(d) / "run" / "agent.sock"


class Echo:
    """An ``answer`` that records what reached it and replies with it."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def __call__(self, raw: bytes) -> dict[str, Any]:
        self.seen.append(raw)
        return {"ok": True, "echo": raw.decode()}


def send_raw(path: Path, payload: bytes) -> bytes:
    """One request as the plugin sends it: write all, half-close, read the reply to EOF."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(path))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def send(path: Path, payload: bytes) -> dict[str, Any]:
    """``send_raw``, its JSON reply decoded."""
    reply: dict[str, Any] = json.loads(send_raw(path, payload))
    return reply


def serve(server: UnixSocketServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, args=(lambda: None,), daemon=True)
    thread.start()
    return thread


def stop(server: UnixSocketServer, thread: threading.Thread) -> None:
    server.stop()
    thread.join(30)
    server.close()


def test_the_socket_is_private_and_each_request_reaches_answer(sock_path: Path) -> None:
    echo = Echo()
    server = UnixSocketServer(sock_path, echo)
    server.bind()
    thread = serve(server)
    try:
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(sock_path.parent).st_mode) == 0o700
        assert send(sock_path, b'{"v":1,"command":"STATUS"}') == {"ok": True, "echo": '{"v":1,"command":"STATUS"}'}
        assert echo.seen == [b'{"v":1,"command":"STATUS"}']
    finally:
        stop(server, thread)
    assert not sock_path.exists()  # a stopped agent leaves no socket to connect to


def test_an_oversized_request_is_refused_before_it_reaches_answer(sock_path: Path) -> None:
    echo = Echo()
    server = UnixSocketServer(sock_path, echo)
    server.bind()
    thread = serve(server)
    try:
        reply = send(sock_path, b" " * (p.MAX_REQUEST_BYTES + 1))
    finally:
        stop(server, thread)
    assert reply["ok"] is False and reply["code"] == p.ERR_DECODE and reply["msg"] == "request too large"
    assert echo.seen == []


def test_a_slow_request_does_not_hold_up_the_next(sock_path: Path) -> None:
    first_arrived, second_answered = threading.Event(), threading.Event()

    def answer(raw: bytes) -> dict[str, Any]:
        if raw == b"first":  # answered only once the second one was: needs two threads
            first_arrived.set()
            return {"ok": second_answered.wait(20)}
        second_answered.set()
        return {"ok": True}

    server = UnixSocketServer(sock_path, answer)
    server.bind()
    thread = serve(server)
    replies: list[dict[str, Any]] = []
    first = threading.Thread(target=lambda: replies.append(send(sock_path, b"first")))
    try:
        first.start()
        assert first_arrived.wait(20)
        assert send(sock_path, b"second") == {"ok": True}
        first.join(30)
    finally:
        stop(server, thread)
    assert replies == [{"ok": True}]


def test_a_second_agent_cannot_take_a_served_socket(sock_path: Path) -> None:
    server = UnixSocketServer(sock_path, Echo())
    server.bind()
    thread = serve(server)
    try:
        with pytest.raises(VpcnetError, match="another agent is serving"):
            UnixSocketServer(sock_path, Echo()).bind()
        assert send(sock_path, b"still") == {"ok": True, "echo": "still"}  # the first one still serves
    finally:
        stop(server, thread)


def test_a_stale_socket_file_is_replaced(sock_path: Path) -> None:
    sock_path.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:  # an agent that died: nobody accepts
        dead.bind(str(sock_path))
    server = UnixSocketServer(sock_path, Echo())
    server.bind()
    thread = serve(server)
    try:
        assert send(sock_path, b"new") == {"ok": True, "echo": "new"}
    finally:
        stop(server, thread)


def test_a_failure_before_serving_removes_the_socket_and_says_why(sock_path: Path) -> None:
    server = UnixSocketServer(sock_path, Echo())
    server.bind()

    def prepare() -> None:
        raise RuntimeError("injected: preparing broke")

    with pytest.raises(RuntimeError):
        server.serve_forever(prepare)
    assert server.failure == "RuntimeError: injected: preparing broke" and not server.serving
    # A client fails at once (the plugin then spools DELs, answers ADD with 11).
    with pytest.raises(FileNotFoundError):
        send(sock_path, b"anyone?")


def test_raw_frames_go_to_raw_answer_up_to_their_own_limit(sock_path: Path) -> None:
    from vpcnet.agent.cniserver import inprocess

    echo, raw_seen = Echo(), []

    def raw_answer(frame: bytes) -> bytes:
        raw_seen.append(len(frame))
        return inprocess.encode_done(0, b"raw")

    server = UnixSocketServer(sock_path, echo, raw_answer)
    server.bind()
    thread = serve(server)
    try:
        # A frame may carry the plugin's whole stdin (MAX_REQUEST_BYTES + 1) and its env.
        frame = inprocess.encode_request({"CNI_COMMAND": "ADD"}, b" " * (p.MAX_REQUEST_BYTES + 1))
        assert send_raw(sock_path, frame) == inprocess.encode_done(0, b"raw")
        too_big = inprocess.REQ_MAGIC + b" " * inprocess.MAX_FRAME_BYTES
        assert send_raw(sock_path, too_big) == inprocess.FALLBACK_MAGIC
        assert send(sock_path, b'{"v":1}') == {"ok": True, "echo": '{"v":1}'}  # JSON as before
    finally:
        stop(server, thread)
    assert raw_seen == [len(frame)] and echo.seen == [b'{"v":1}']


def test_without_raw_answer_a_raw_frame_is_answered_fallback(sock_path: Path) -> None:
    from vpcnet.agent.cniserver import inprocess

    echo = Echo()
    server = UnixSocketServer(sock_path, echo)
    server.bind()
    thread = serve(server)
    try:
        assert send_raw(sock_path, inprocess.encode_request({}, b"{}")) == inprocess.FALLBACK_MAGIC
    finally:
        stop(server, thread)
    assert echo.seen == []
