"""The agent's CNI socket server: where ``vpcnet-cni`` requests become IPs and veths.

A threaded unix-socket server (socket mode 0600, one request per connection, size- and
time-limited). Requests are validated again here (never trust the client), serialised
per attachment key, and run against the IPAM and ``PodNetwork``:

- ADD: refused with code 11 while the node is not ready; checks CNI_NETNS (a pod's
  network namespace, never the node's; code 4 otherwise, 3 when it is gone); allocates
  (the same key gets the same IP), makes the allocation durable (checkpoint fsynced)
  *before* programming anything, programs the pod (an IP some interface routes already
  is refused; rules an agent left for an IP nothing routes are replaced); on failure
  rolls the pod back and frees an IP it took.
- DEL: removes the pod's veth and rules, then frees the IP into the cooldown; an IP is
  only freed once its rules are gone, so a failed DEL keeps it (the runtime retries).
- CHECK: the IP the runtime recorded is still ours and ``PodNetwork.check`` passes.
- ADD waits, within the budget the plugin names, for an IP that is coming (one leaving
  the cooldown, or any while ``can_grow`` says the control plane can still add IPs: the
  waiting ADDs are the node's demand); one that no IP can reach fails at once with code
  11, saying why (limits reached, subnet exhausted, ...).
- STATUS: 50 when the node is not ready, or when an ADD now could get no IP at all (none
  free, none leaving the cooldown within an ADD's budget, and the pool cannot grow).
- GC: tears down and frees attachments absent from ``cni.dev/valid-attachments``;
  runs exclusively (no ADD/DEL in flight), as the spec asks of runtimes anyway.

DELs the plugin spooled while the agent was unreachable (``pending-del`` next to the
socket) are replayed at start, every few seconds, and before an ADD of the same key.
Each one on its own: one that fails (a netlink errno, a full disk) is logged and kept
for the next sweep; a file that is no DEL is quarantined (``vpcnet.agent.cnispool``).

At start, before serving, pod rules of IPs the checkpoint says no pod holds, and that
no interface routes, are removed (an agent that forgot a pod, e.g. one that died
before this fix between programming it and its checkpoint, left them: DEL then only
removes its veth).
"""

from __future__ import annotations

import contextvars
import errno
import ipaddress
import logging
import os
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from vpcnet.agent.checkpoint import Checkpoint
from vpcnet.agent.cniserver.spool import Spool
from vpcnet.agent.ipam import AttachmentKey, Ipam
from vpcnet.agent.nlbatch import InvalidNetns
from vpcnet.agent.podnet import PodNetwork, PodSpec, eni_table
from vpcnet.cni import protocol as p
from vpcnet.cni.protocol import CniError
from vpcnet.errors import PodNetworkError, PoolExhausted, VpcnetError
from vpcnet.settings import AgentSettings

log = logging.getLogger("vpcnet.agent.cni")

READ_TIMEOUT_SECONDS = 10.0
# An ADD (or STATUS) from a plugin that names no budget (an older one): the budget of the
# plugin's default timeout (60 s, less its 5 s margin for the reply).
DEFAULT_ADD_BUDGET_SECONDS = 55.0
PENDING_SCAN_SECONDS = 5.0
RESTART_SECONDS = 1.0  # between a failed serving loop and its restart
_MAX_POD_FIELD = 253  # a Kubernetes name


@dataclass(frozen=True, slots=True)
class Request:
    command: str
    key: AttachmentKey | None = None
    netns: str = ""
    pod_namespace: str = ""
    pod_name: str = ""
    mtu: int | None = None
    expect_ip: ipaddress.IPv4Address | None = None
    valid: frozenset[AttachmentKey] = frozenset()
    budget: float = DEFAULT_ADD_BUDGET_SECONDS  # ADD: seconds it may wait for an IP


@dataclass(frozen=True, slots=True)
class RequestTiming:
    """Where one request's time went (for metrics and ``vpcnet bench cni``)."""

    command: str
    ok: bool
    total: float  # seconds, parse to reply
    checkpoint: float  # of which writing the checkpoint
    netlink: float  # of which programming the pod network
    code: int = 0  # the CNI error code of the reply (0: success)


def parse_request(raw: bytes) -> Request:
    """Validate one wire request; CniError with the spec code otherwise."""
    try:
        doc = p.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CniError(p.ERR_DECODE, "undecodable request", str(e)[:256]) from e
    if not isinstance(doc, dict):
        raise CniError(p.ERR_DECODE, "request is not a JSON object")
    if doc.get("v") != p.WIRE_VERSION:
        raise CniError(p.ERR_INCOMPATIBLE_VERSION, f"wire version {doc.get('v')!r} not supported")
    command = doc.get("command")
    if command not in p.AGENT_COMMANDS:
        raise CniError(p.ERR_INVALID_ENV, f"unknown command {str(command)[:32]!r}")
    if command == "STATUS":
        return Request(command, budget=_budget(doc))
    if command == "GC":
        valid = doc.get("validAttachments")
        if not isinstance(valid, list) or not all(
            isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v) for v in valid
        ):
            raise CniError(p.ERR_INVALID_CONFIG, "validAttachments must be a list of [containerId, ifname]")
        return Request(command, valid=frozenset(AttachmentKey(c, i) for c, i in valid))
    cid, ifname, netns = doc.get("containerId"), doc.get("ifname"), doc.get("netns", "")
    if not isinstance(cid, str) or not p.valid_container_id(cid):
        raise CniError(p.ERR_INVALID_ENV, "invalid CNI_CONTAINERID")
    if not isinstance(ifname, str) or not p.valid_ifname(ifname):
        raise CniError(p.ERR_INVALID_ENV, "invalid CNI_IFNAME")
    if not isinstance(netns, str) or (netns and not p.valid_netns(netns)):
        raise CniError(p.ERR_INVALID_ENV, "invalid CNI_NETNS")
    if command in ("ADD", "CHECK") and not netns:
        raise CniError(p.ERR_INVALID_ENV, "CNI_NETNS is required")
    names = [doc.get("podNamespace", ""), doc.get("podName", "")]
    if not all(isinstance(n, str) and len(n) <= _MAX_POD_FIELD for n in names):
        raise CniError(p.ERR_INVALID_ENV, "invalid K8S_POD_NAMESPACE / K8S_POD_NAME")
    mtu = doc.get("mtu")
    if mtu is not None and (type(mtu) is not int or not 576 <= mtu <= 9001):
        raise CniError(p.ERR_INVALID_CONFIG, "mtu must be an integer in 576..9001")
    expect = None
    if command == "CHECK":
        try:
            expect = ipaddress.IPv4Address(doc.get("expectIp"))
        except ValueError as e:
            raise CniError(p.ERR_INVALID_CONFIG, "prevResult has no valid IPv4 address") from e
    return Request(command, AttachmentKey(cid, ifname), netns, names[0], names[1], mtu, expect,
                   budget=_budget(doc))


def _budget(doc: dict[str, Any]) -> float:
    budget = doc.get("budgetSeconds", DEFAULT_ADD_BUDGET_SECONDS)
    if type(budget) not in (int, float) or not 0 <= budget <= p.MAX_ADD_BUDGET_SECONDS:
        raise CniError(p.ERR_INVALID_CONFIG, f"budgetSeconds must be a number in [0, {p.MAX_ADD_BUDGET_SECONDS:g}]")
    return float(budget)


class _Gate:
    """Many ADD/DEL/CHECK at once, or one GC alone (a small readers-writer lock)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._exclusive = True  # new readers wait from here on
            self._cond.wait_for(lambda: self._shared == 0)
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class _KeyLocks:
    """One lock per attachment key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._locks: dict[AttachmentKey, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: AttachmentKey) -> Iterator[None]:
        with self._mutex:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._mutex:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


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
                if size > p.MAX_REQUEST_BYTES:
                    break
                chunks.append(chunk)
        except OSError as e:
            log.warning("reading a CNI request failed: %s", e)
            return
        if size > p.MAX_REQUEST_BYTES:
            reply = p.error_reply(p.ERR_DECODE, "request too large", f"> {p.MAX_REQUEST_BYTES} bytes")
        else:
            reply = self.server.cni.handle(b"".join(chunks))
        try:
            conn.sendall(p.dumps(reply).encode())
        except OSError as e:
            # The plugin gave up (timeout, killed): for ADD the runtime will DEL.
            log.warning("answering a CNI request failed: %s", e)


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 1024  # a burst of pods on a fresh node
    cni: CniServer


class CniServer:
    def __init__(
        self,
        settings: AgentSettings,
        ipam: Ipam,
        podnet: PodNetwork,
        checkpoint: Checkpoint,
        is_ready: Callable[[], bool] = lambda: True,
        on_change: Callable[[], None] | None = None,
        pending_dir: str | None = None,
        observe: Callable[[RequestTiming], None] | None = None,
        can_grow: Callable[[], str] = lambda: "the pool cannot grow",
    ) -> None:
        self.settings = settings
        self.can_grow = can_grow  # "" while the control plane can add IPs, else why not
        self.ipam = ipam
        self.podnet = podnet
        self.checkpoint = checkpoint
        self.is_ready = is_ready
        self.on_change = on_change
        self.observe = observe
        self._phase = threading.local()  # per-request phase durations
        self.socket_path = Path(settings.socket_path)
        self.pending_dir = Path(pending_dir or self.socket_path.parent / "pending-del")
        self.spool = Spool(self.pending_dir)
        self._gate = _Gate()
        self._keys = _KeyLocks()
        self._server: _UnixServer | None = None
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._state_lock = threading.Lock()
        self._serving = False
        self._socket_id: tuple[int, int] | None = None  # (st_dev, st_ino) of our socket
        self.failure = ""  # why the server stopped serving without shutdown ("" = it did not)
        self.restarts = 0  # times the serving loop failed and was started again
        # Taken now, while the pool is what the checkpoint says: by the time the
        # server starts, the agent may have added IPs from Redis it knows less about.
        self._unassigned_at_start = ipam.unassigned()
        self._reaper = ThreadPoolExecutor(2, thread_name_prefix="cni-reap")
        self._dying: dict[AttachmentKey, Future[None]] = {}
        self._dying_lock = threading.Lock()
        self.requests = 0  # served, for the agent's report and the benchmark

    # -- lifecycle -------------------------------------------------------------------------

    def bind(self) -> None:
        """Create the listening socket (mode 0600); fails if another agent serves it."""
        if self._server is not None:
            return
        path = self.socket_path
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
        server.cni = self
        self._server = server
        self._bound.set()

    def serve_forever(self) -> None:
        """Bind (if needed), prepare, then serve until ``shutdown``.

        Preparing (forwarding on, leftover rules of unassigned IPs removed, spooled
        DELs replayed) never keeps the server from serving: each step logs its failure
        and is retried later by its own path. A failure of the serving loop restarts
        it. Should this thread end any other way than by ``shutdown``, the socket is
        closed and removed, so that no client waits out its timeout on a socket nobody
        serves (ADD fails at once with 11, DEL is spooled), and ``failure`` says why.
        """
        self.bind()
        try:
            self._prepare()
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

    def _prepare(self) -> None:
        try:
            self.podnet.ensure_forwarding()
        except PodNetworkError as e:
            log.error("cannot enable forwarding in the node namespace: %s", e)
        try:
            removed = self.podnet.remove_leftovers(self._unassigned_at_start)
            if removed:
                log.warning("removed %d pod rules left behind for IPs no pod holds", removed)
        except VpcnetError as e:  # the ADD of each such IP removes them too
            log.error("removing leftover pod rules failed: %s", e)
        self.drain_pending()  # per entry: a bad one is logged and kept, never raised
        sweeper = threading.Thread(target=self._pending_loop, name="cni-pending", daemon=True)
        sweeper.start()

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
                return  # shutdown() asked for it
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
            st = os.stat(self.socket_path)
            if (st.st_dev, st.st_ino) == self._socket_id:  # never another agent's
                self.socket_path.unlink()
        except OSError:
            pass

    def wait_bound(self, timeout: float | None = None) -> bool:
        return self._bound.wait(timeout)

    def shutdown(self) -> None:
        with self._state_lock:
            self._stop.set()
            serving = self._serving
        server = self._server
        if server is None:
            return
        if serving:  # socketserver's shutdown() waits for a loop that must have started
            server.shutdown()
        self._reaper.shutdown(wait=True)  # no veth left half-destroyed
        server.server_close()
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass
        self._server = None

    # -- dispatch ---------------------------------------------------------------------------

    def handle(self, raw: bytes) -> dict[str, Any]:
        """One wire request -> one reply; never raises."""
        # In a copy of the context: the log fields bound for this request end with it.
        return contextvars.copy_context().run(self._handle, raw)

    def _handle(self, raw: bytes) -> dict[str, Any]:
        started = time.perf_counter()
        self._phase.checkpoint = self._phase.netlink = 0.0
        req: Request | None = None
        try:
            req = parse_request(raw)
            if req.key is not None:  # every log line of this request names the container
                structlog.contextvars.bind_contextvars(
                    container=req.key.container_id, ifname=req.key.ifname,
                    **({"pod": f"{req.pod_namespace}/{req.pod_name}"} if req.pod_name else {}),
                )
            reply = self._dispatch(req)
        except CniError as e:
            reply = e.to_reply()
        except PoolExhausted as e:
            reply = p.error_reply(p.ERR_TRY_AGAIN, "no free IP on this node", str(e))
        except InvalidNetns as e:  # replaced after _check_netns looked at it
            reply = p.error_reply(p.ERR_INVALID_ENV, "invalid CNI_NETNS", str(e))
        except PodNetworkError as e:
            code = p.ERR_UNKNOWN_CONTAINER if _netns_gone(e, req) else p.ERR_POD_NETWORK
            reply = p.error_reply(code, "pod network setup failed", str(e))
        except VpcnetError as e:
            reply = p.error_reply(p.ERR_INTERNAL, type(e).__name__, str(e))
        except Exception as e:
            log.exception("CNI request failed unexpectedly")
            reply = p.error_reply(p.ERR_INTERNAL, "internal error in the vpcnet agent", f"{type(e).__name__}: {e}")
        self.requests += 1
        elapsed = time.perf_counter() - started
        ms = elapsed * 1000
        code = 0 if reply.get("ok") else int(reply.get("code") or p.ERR_INTERNAL)
        if self.observe is not None and req is not None:
            self.observe(
                RequestTiming(req.command, bool(reply.get("ok")), elapsed, self._phase.checkpoint,
                              self._phase.netlink, code)
            )
        if req is not None:
            log.info(
                "cni %s %s -> %s (%.1f ms)",
                req.command,
                req.key or "",
                "ok" if reply.get("ok") else f"error {reply.get('code')}: {reply.get('details') or reply.get('msg')}",
                ms,
                extra={"command": req.command, "code": code, "ms": round(ms, 2),
                       **({"eni": reply["eni"], "ip": reply["ip"]} if "eni" in reply else {})},
            )
        return reply

    def _dispatch(self, req: Request) -> dict[str, Any]:
        if req.command == "STATUS":
            return self._status(req.budget)
        if req.command == "GC":
            with self._gate.exclusive():
                return self._gc(req.valid)
        assert req.key is not None
        with self._gate.shared(), self._keys.hold(req.key):
            if req.command == "ADD":
                return self._add(req)
            if req.command == "DEL":
                self._delete(req.key)
                self.spool.remove(req.key)
                return {"ok": True}
            return self._check(req)

    def _status(self, budget: float) -> dict[str, Any]:
        if not self.is_ready():
            raise CniError(p.ERR_NOT_AVAILABLE, "vpcnet agent not ready", "the node's ENIs are not programmed yet")
        why = self.ipam.outlook(budget, self.can_grow)
        if why:
            raise CniError(p.ERR_NOT_AVAILABLE, "no IP can be had on this node", why)
        return {"ok": True}

    def _add(self, req: Request) -> dict[str, Any]:
        assert req.key is not None
        if not self.is_ready():
            raise CniError(p.ERR_TRY_AGAIN, "vpcnet agent not ready", "the node's ENIs are not programmed yet")
        self._replay_pending(req.key)  # a DEL spooled for this key must go first
        self._await_dying(req.key)  # and the veth of its last DEL must be gone
        self._check_netns(req.netns)
        fresh = self.ipam.get(req.key) is None
        alloc = self.ipam.allocate(req.key, req.pod_namespace, req.pod_name,
                                   wait=req.budget, can_grow=self.can_grow)
        spec = PodSpec(req.key, req.netns, alloc.ip, eni_table(alloc.eni), req.mtu or self.settings.mtu)
        # Durable first: nothing is programmed for an IP the checkpoint does not hold.
        # Should the agent die after the fsync, the restarted agent knows the IP is
        # taken and the runtime's DEL (which follows every failed ADD) frees it.
        try:
            with self._timed("checkpoint"):
                self.checkpoint.sync(self.ipam)
            with self._timed("netlink"):
                link = self.podnet.setup(spec)  # rolls itself back on failure
        except BaseException:
            if fresh:
                self.ipam.release(req.key)
                self._quietly(lambda: self.checkpoint.sync(self.ipam))
            raise
        self._changed()
        return {
            "ok": True,
            "ip": str(alloc.ip),
            "hostIf": link.host_ifname,
            "hostMac": link.host_mac,
            "podMac": link.pod_mac,
            "mtu": link.mtu,
            "gateway": p.POD_GATEWAY,
            "eni": alloc.eni.eni_id,
        }

    def _delete(self, key: AttachmentKey) -> None:
        """Cut the pod off and free its IP; the veth is destroyed in the background.

        The answer does not wait for the veth's destruction (an RCU grace period in
        the kernel): once its route and rules are gone and it is down, the pod is
        unreachable, and its IP stays in the cooldown far longer than the destruction
        takes. A later ADD or DEL of the same key waits for it (``_await_dying``), and
        shutdown waits for all of them.
        """
        self._await_dying(key)
        alloc = self.ipam.get(key)
        with self._timed("netlink"):
            self.podnet.teardown(
                key, alloc.ip if alloc else None, eni_table(alloc.eni) if alloc else None, keep_link=True
            )
        if alloc is not None:
            self.ipam.release(key)
        with self._timed("checkpoint"):
            # Unconditionally: when an earlier write failed after the release (a full
            # disk), a retried DEL finds no allocation but must still make it durable.
            self.checkpoint.sync(self.ipam)
        if alloc is not None:
            self._changed()
        with self._dying_lock:
            self._dying[key] = self._reaper.submit(self._reap, key)

    def _reap(self, key: AttachmentKey) -> None:
        try:
            self.podnet.remove_link(key)
        except VpcnetError as e:  # left for the next ADD of the key or the netns' deletion
            log.error("destroying the veth of %s failed: %s", key, e)

    def _await_dying(self, key: AttachmentKey) -> None:
        with self._dying_lock:
            dying = self._dying.pop(key, None)
        if dying is not None:
            dying.result()

    def wait_idle(self) -> None:
        """Block until every veth a DEL left to the background is destroyed."""
        with self._dying_lock:
            pending = list(self._dying.values())
        for f in pending:
            f.result()

    def _check(self, req: Request) -> dict[str, Any]:
        assert req.key is not None
        alloc = self.ipam.get(req.key)
        if alloc is None:
            raise CniError(p.ERR_CHECK_FAILED, "no IP is assigned to this attachment", str(req.key))
        if alloc.ip != req.expect_ip:
            raise CniError(p.ERR_CHECK_FAILED, "IP differs from prevResult", f"assigned {alloc.ip}, prevResult {req.expect_ip}")
        self._check_netns(req.netns)
        try:
            self.podnet.check(PodSpec(req.key, req.netns, alloc.ip, eni_table(alloc.eni), req.mtu or self.settings.mtu))
        except PodNetworkError as e:
            raise CniError(p.ERR_CHECK_FAILED, "pod network differs from ADD", str(e)) from e
        return {"ok": True}

    def _check_netns(self, path: str) -> None:
        """CNI_NETNS must be a pod's network namespace: checked before anything changes,
        without blocking (a FIFO there once held a request thread, and the gate, forever)."""
        try:
            self.podnet.validate_netns(path)
        except InvalidNetns as e:
            raise CniError(p.ERR_INVALID_ENV, "invalid CNI_NETNS", str(e)) from e
        except PodNetworkError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                raise CniError(p.ERR_UNKNOWN_CONTAINER, "network namespace does not exist", path) from e
            raise CniError(p.ERR_INVALID_ENV, "invalid CNI_NETNS", str(e)) from e

    def _gc(self, valid: frozenset[AttachmentKey]) -> dict[str, Any]:
        self._drain(gated=False)
        failures = []
        released = 0
        for alloc in self.ipam.allocations():
            if alloc.key in valid:
                continue
            try:
                self._delete(alloc.key)
                released += 1
            except VpcnetError as e:  # keep going: remove as much as possible
                failures.append(f"{alloc.key}: {e}")
        if failures:
            raise CniError(p.ERR_POD_NETWORK, f"GC could not remove {len(failures)} attachments", "; ".join(failures)[:2000])
        return {"ok": True, "released": released}

    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - start
            setattr(self._phase, phase, getattr(self._phase, phase, 0.0) + spent)

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("on_change callback failed")

    @staticmethod
    def _quietly(action: Callable[[], None]) -> None:
        """Best effort on a path that is already failing: log, never mask the first error."""
        try:
            action()
        except VpcnetError as e:
            log.error("cleanup after a failed ADD failed: %s", e)

    # -- spooled DELs ---------------------------------------------------------------------------

    def drain_pending(self) -> int:
        """Replay every DEL the plugin spooled while the agent was unreachable."""
        return self._drain(gated=True)

    def _drain(self, gated: bool) -> int:
        done = 0
        for path in self.spool.entries():
            try:
                key = self.spool.key_of(path)
                if key is None:
                    continue
                if gated:
                    with self._gate.shared(), self._keys.hold(key):
                        done += self._replay_pending(key)
                else:  # the caller holds the gate exclusively
                    done += self._replay_pending(key)
            except Exception as e:
                # One entry's failure stops neither the others nor the server; its
                # file stays, so the IP stays held until a later sweep replays it.
                log.error("replaying spooled DEL %s failed (kept, retried): %s", path, e)
        return done

    def _replay_pending(self, key: AttachmentKey) -> int:
        """Run the spooled DEL of ``key`` if there is one (caller holds the key lock)."""
        if not self.spool.has(key):
            return 0
        self._delete(key)
        self.spool.remove(key)
        log.info("replayed the DEL of %s spooled while the agent was down", key)
        return 1

    def _pending_loop(self) -> None:
        while not self._stop.wait(PENDING_SCAN_SECONDS):
            try:
                self.drain_pending()
            except Exception:  # never end the sweeps: spooled DELs hold IPs
                log.exception("replaying spooled DELs failed (retrying)")


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


def _netns_gone(e: PodNetworkError, req: Request | None) -> bool:
    return e.errno == errno.ENOENT and req is not None and bool(req.netns) and not os.path.exists(req.netns)
