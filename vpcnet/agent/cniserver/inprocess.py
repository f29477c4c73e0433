"""The launcher's fast path: a raw CNI invocation run by the plugin's own code, in the agent.

Kubelet execs ``/opt/cni/bin/vpcnet-cni``, a static launcher (``vpcnet/install/launcher.c``).
When the installer embedded the agent's socket in it, the launcher sends the invocation
as it got it (stdin and the six ``CNI_*`` variables, uninterpreted) in one raw frame and
prints what comes back; that saves the Python interpreter's start, which is all of the
gap to a compiled plugin. Nothing of the CNI semantics is implemented twice: the agent
runs ``vpcnet.cni.plugin.main`` on the frame's stdin and environment, exactly as the exec'd
plugin would, with only its call to the agent replaced by a direct call of the
``Dispatcher`` (same bytes in, same bytes out, same timeout). The agent process hands
``plugin.main`` in (``CniServer(plugin_main=...)``): the plugin is an entry point, a
layer above this one (the import contracts in pyproject.toml). All validation, error
codes, results, the spooling of a DEL whose answer did not come in time and the
``logFile`` line stay in ``plugin.py``.

The agent answers "fallback" instead, and the launcher execs the plugin proper, when it
cannot honour the request as the exec'd plugin would: a config naming another agent's
socket, another log file or another spool directory (checked on the decoded config,
before any side effect), a frame it cannot decode, or stdout too large for the launcher.

Frame (the launcher's constants must match these; a unit test compares them)::

    request:  REQ_MAGIC, "NAME=value\\0" per CNI_* variable set, "\\0", stdin as read
    replies:  DONE_MAGIC, one byte of exit status, the plugin's stdout  |  FALLBACK_MAGIC

The magics start with a NUL byte, so no frame is ever taken for a JSON request.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from vpcnet.cni import protocol as p
from vpcnet.cni.protocol import ForeignConfig

log = logging.getLogger("vpcnet.agent.cni")

REQ_MAGIC = b"\0vpcnet-cni/1 req\0"
DONE_MAGIC = b"\0vpcnet-cni/1 done\0"
FALLBACK_MAGIC = b"\0vpcnet-cni/1 fallback\0"
# Room for the CNI_* variables in a frame; the launcher falls back on more (no valid
# request comes near it: a container ID is at most 1 KiB, a netns path 4 KiB).
ENV_ALLOWANCE = 65536
# The largest frame the agent reads: the plugin reads at most MAX_REQUEST_BYTES + 1 of
# stdin (one more than it accepts, to tell "too large"); the launcher sends as much.
MAX_FRAME_BYTES = len(REQ_MAGIC) + ENV_ALLOWANCE + p.MAX_REQUEST_BYTES + 1
# The launcher's buffer for the plugin's stdout (an ADD result may pass a prevResult of
# up to MAX_REQUEST_BYTES through).
MAX_STDOUT_BYTES = 1 << 21

Handle = Callable[[bytes], dict[str, Any]]


class PluginMain(Protocol):
    """``vpcnet.cni.plugin.main``."""

    def __call__(
        self,
        environ: Mapping[str, str] | None = None,
        stdin: BinaryIO | None = None,
        stdout: BinaryIO | None = None,
        *,
        roundtrip: Callable[[str, bytes, float], bytes] | None = None,
        check_config: Callable[[dict[str, Any]], None] | None = None,
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class RawInvocation:
    env: dict[str, str]  # the CNI_* variables that were set, decoded as the plugin does
    stdin: bytes


def encode_request(env: Mapping[str, str], stdin: bytes) -> bytes:
    """The frame the launcher sends (pure; the launcher builds the same bytes in C)."""
    parts = [REQ_MAGIC]
    for key in p.ENV_KEYS:
        if key in env:
            entry = f"{key}={env[key]}".encode("utf-8", "surrogateescape")
            if b"\0" in entry:
                raise ValueError(f"{key} holds a NUL byte")
            parts.append(entry + b"\0")
    parts.append(b"\0")
    parts.append(stdin)
    return b"".join(parts)


def decode_request(frame: bytes) -> RawInvocation:
    """A request frame -> its invocation; ValueError when it is not a well-formed one."""
    if not frame.startswith(REQ_MAGIC):
        raise ValueError("not a raw CNI request")
    at = len(REQ_MAGIC)
    env: dict[str, str] = {}
    while True:
        end = frame.find(b"\0", at)
        if end < 0:
            raise ValueError("unterminated environment")
        if end == at:
            break
        key, sep, value = frame[at:end].partition(b"=")
        name = key.decode("ascii", "replace")
        if not sep or name not in p.ENV_KEYS or name in env:
            raise ValueError(f"unexpected environment entry {frame[at:end][:64]!r}")
        env[name] = value.decode("utf-8", "surrogateescape")  # as posix.environ is decoded
        at = end + 1
        if at - len(REQ_MAGIC) > ENV_ALLOWANCE:
            raise ValueError("environment larger than the allowance")
    stdin = frame[end + 1 :]
    if len(stdin) > p.MAX_REQUEST_BYTES + 1:
        raise ValueError("stdin larger than the plugin reads")
    return RawInvocation(env, stdin)


def encode_done(rc: int, stdout: bytes) -> bytes:
    return DONE_MAGIC + bytes([rc & 0xFF]) + stdout


def decode_reply(reply: bytes) -> tuple[int, bytes] | None:
    """(exit status, stdout) of a "done" reply; None for "fallback" (what the launcher does)."""
    if reply == FALLBACK_MAGIC:
        return None
    if not reply.startswith(DONE_MAGIC) or len(reply) <= len(DONE_MAGIC):
        raise ValueError("malformed raw reply")
    return reply[len(DONE_MAGIC)], reply[len(DONE_MAGIC) + 1 :]


class InProcess:
    """Answers raw frames by running the plugin's ``main`` (``plugin_main``) against ``handle``.

    ``socket_path``, ``log_file`` and ``pending_dir`` are this agent's own: a request whose
    config names others is answered "fallback" (the agent cannot honour a config it does
    not own: it might be another agent's, or paths the agent's container does not see as
    the host does). A config without ``logFile`` writes no log either way.
    """

    def __init__(
        self, handle: Handle, plugin_main: PluginMain, socket_path: str, log_file: str, pending_dir: str
    ) -> None:
        self.handle = handle
        self.plugin_main = plugin_main
        self.socket_path = socket_path
        self.log_file = str(Path(log_file)) if log_file else ""
        self.pending_dir = str(Path(pending_dir))
        self.requests = 0  # invocations answered in-process
        self.fallbacks = 0  # frames answered "fallback"
        self._lock = threading.Lock()

    def answer(self, frame: bytes) -> bytes:
        """One raw frame -> one raw reply; never raises."""
        try:
            inv = decode_request(frame)
        except ValueError as e:
            log.warning("raw CNI request not understood (%s): the launcher falls back", e)
            return self._fallback()
        out = io.BytesIO()
        try:
            rc = self.plugin_main(inv.env, io.BytesIO(inv.stdin), out,
                                  roundtrip=self._roundtrip, check_config=self._check_config)
        except ForeignConfig as e:
            log.info("raw CNI request left to the plugin: %s", e)
            return self._fallback()
        except Exception:  # main handles its own errors; anything else is a bug here
            log.exception("in-process CNI invocation failed: the launcher falls back")
            return self._fallback()
        stdout = out.getvalue()
        if len(stdout) > MAX_STDOUT_BYTES:  # the plugin redoes it (ADD is idempotent)
            return self._fallback()
        with self._lock:
            self.requests += 1
        return encode_done(rc, stdout)

    def _fallback(self) -> bytes:
        with self._lock:
            self.fallbacks += 1
        return FALLBACK_MAGIC

    def _check_config(self, conf: dict[str, Any]) -> None:
        sock = conf.get("agentSocket")
        if sock != self.socket_path:
            raise ForeignConfig(f"agentSocket {str(sock)[:128]!r} is not {self.socket_path}")
        log_file = conf.get("logFile")
        if log_file is not None and (not isinstance(log_file, str) or _norm(log_file) != self.log_file):
            raise ForeignConfig(f"logFile {str(log_file)[:128]!r} is not {self.log_file or 'set'}")
        pending = conf.get("pendingDir")
        if pending is not None and not isinstance(pending, str):
            raise ForeignConfig("pendingDir is not a string")
        if _norm(p.pending_dir(conf)) != self.pending_dir:
            raise ForeignConfig(f"pendingDir {p.pending_dir(conf)[:128]!r} is not {self.pending_dir}")

    def _roundtrip(self, path: str, data: bytes, timeout: float) -> bytes:
        """The plugin's call to the agent, in-process: the Dispatcher in a worker thread,
        given up (TimeoutError, an OSError: ADD -> 11, DEL -> spooled) after ``timeout``
        as the exec'd plugin's socket timeout would. The Dispatcher goes on and finishes
        the request, as it does when an exec'd plugin stops waiting."""
        box: list[bytes] = []
        done = threading.Event()

        def work() -> None:
            try:
                box.append(p.dumps(self.handle(data)).encode())
            finally:
                done.set()

        threading.Thread(target=work, name="cni-inprocess", daemon=True).start()
        if not done.wait(timeout):
            raise TimeoutError(f"no answer from the agent within {timeout:g} s")
        if not box:
            raise ConnectionError("the agent closed the connection without a reply")
        if len(box[0]) > p.MAX_REPLY_BYTES:
            raise ConnectionError("reply from the agent too large")
        return box[0]


def _norm(path: str) -> str:
    """``path`` as ``pathlib`` spells it (no doubled or trailing slashes, no ``.``)."""
    return str(Path(path)) if path.startswith("/") and "\0" not in path else path


__all__ = [
    "DONE_MAGIC", "ENV_ALLOWANCE", "FALLBACK_MAGIC", "MAX_FRAME_BYTES", "MAX_STDOUT_BYTES", "REQ_MAGIC",
    "InProcess", "PluginMain", "RawInvocation", "decode_reply", "decode_request", "encode_done", "encode_request",
]
