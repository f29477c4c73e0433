"""One wire request -> one reply: parse, serialise, run the command, answer with a spec code.

Requests are serialised per attachment key; GC runs exclusively (no ADD/DEL in flight)
after replaying the spool. Every failure becomes a reply with the CNI error code a
runtime acts on, and every request is counted, timed (``observe``) and logged.
"""

from __future__ import annotations

import contextvars
import errno
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import structlog

from vpcnet.agent.cniserver.locks import Gate, KeyLocks
from vpcnet.agent.cniserver.request import Request, parse_request
from vpcnet.agent.cniserver.service import CniService
from vpcnet.agent.cniserver.sweeper import SpoolSweeper
from vpcnet.agent.cniserver.timing import RequestTiming
from vpcnet.agent.nlbatch import InvalidNetns
from vpcnet.cni import protocol as p
from vpcnet.cni.protocol import CniError
from vpcnet.errors import PodNetworkError, PoolExhausted, VpcnetError

log = logging.getLogger("vpcnet.agent.cni")


class Dispatcher:
    def __init__(
        self,
        service: CniService,
        sweeper: SpoolSweeper,
        gate: Gate,
        keys: KeyLocks,
        observe: Callable[[RequestTiming], None] | None = None,
    ) -> None:
        self.service = service
        self.sweeper = sweeper
        self.observe = observe
        self._gate = gate
        self._keys = keys
        self.requests = 0  # served, for the agent's report and the benchmark

    def handle(self, raw: bytes) -> dict[str, Any]:
        """One wire request -> one reply; never raises."""
        # In a copy of the context: the log fields bound for this request end with it.
        return contextvars.copy_context().run(self._handle, raw)

    def _handle(self, raw: bytes) -> dict[str, Any]:
        started = time.perf_counter()
        clock = self.service.clock
        clock.reset()
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
                RequestTiming(req.command, bool(reply.get("ok")), elapsed, clock.spent("checkpoint"),
                              clock.spent("netlink"), code)
            )
        if req is not None:
            log.info(
                "cni %s %s -> %s (%.1f ms)",
                req.command,
                req.key or "",
                "ok" if reply.get("ok") else f"error {reply.get('code')}: {reply.get('details') or reply.get('msg')}",
                ms,
                extra={"command": req.command, "code": code, "ms": round(ms, 2),
                       "ip_ms": round(clock.spent("ip") * 1000, 2),
                       "checkpoint_ms": round(clock.spent("checkpoint") * 1000, 2),
                       "netlink_ms": round(clock.spent("netlink") * 1000, 2),
                       **{k: reply[k] for k in ("eni", "ip", "ip6") if k in reply}},
            )
        return reply

    def _dispatch(self, req: Request) -> dict[str, Any]:
        if req.command == "STATUS":
            return self.service.status(req.budget)
        if req.command == "GC":
            with self._gate.exclusive():
                self.sweeper.drain(gated=False)
                return self.service.gc(req.valid)
        assert req.key is not None
        with self._gate.shared(), self._keys.hold(req.key):
            if req.command == "ADD":
                return self.service.add(req)
            if req.command == "DEL":
                self.service.delete(req.key)
                return {"ok": True}
            return self.service.check(req)


def _netns_gone(e: PodNetworkError, req: Request | None) -> bool:
    return e.errno == errno.ENOENT and req is not None and bool(req.netns) and not os.path.exists(req.netns)
