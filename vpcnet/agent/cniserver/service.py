"""The CNI commands, against the IPAM and ``PodNetwork``: what ADD, DEL, CHECK, STATUS and GC do.

- ADD: refused with code 11 while the node is not ready; runs a DEL spooled for the
  same key first; checks CNI_NETNS (a pod's network namespace, never the node's; code 4
  otherwise, 3 when it is gone); allocates (the same key gets the same IP), makes the
  allocation durable (checkpoint fsynced) *before* programming anything, programs the
  pod (an IP some interface routes already is refused; rules an agent left for an IP
  nothing routes are replaced); on failure rolls the pod back and frees an IP it took.
- DEL: removes the pod's veth and rules (and its IPv6 proxy entry), then frees the IP
  into the cooldown; an IP is only freed once its rules are gone, so a failed DEL keeps
  it (the runtime retries).
- CHECK: the IP the runtime recorded is still ours and ``PodNetwork.check`` passes.
- ADD waits, within the budget the plugin names, for an IP that is coming (one leaving
  the cooldown, or any while ``can_grow`` says the control plane can still add IPs: the
  waiting ADDs are the node's demand); one that no IP can reach fails at once with code
  11, saying why (limits reached, subnet exhausted, ...).
- STATUS: 50 when the node is not ready, or when an ADD now could get no IP at all (none
  free, none leaving the cooldown within an ADD's budget, and the pool cannot grow).
- GC: tears down and frees attachments absent from ``cni.dev/valid-attachments``.

Families (``family()``, the node's ``ip_family``): an ipv4 pod gets one IPv4 (above), an
ipv6 pod one IPv6 from the node's /80s (``Ipam6``), a dual pod one of each under the
same key, both or neither: when the second fails the first is released. An ADD waits
for a /80 that is coming like for an IPv4 (``can_grow6``); STATUS is 50 when an address
of a wanted family cannot be had (a dual pod needs both), never for an unwanted one. DEL, GC and CHECK cover both families.

Which of them may run at once is the caller's (``Dispatcher``): one key at a time, GC alone.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from vpcnet.agent.checkpoint import Checkpoint
from vpcnet.agent.cniserver.request import Request
from vpcnet.agent.cniserver.spool import Spool
from vpcnet.agent.cniserver.timing import PhaseClock
from vpcnet.agent.ipam import Allocation, AttachmentKey, Ipam
from vpcnet.agent.ipam6 import Allocation6, Ipam6
from vpcnet.agent.nlbatch import InvalidNetns
from vpcnet.agent.podnet import PodNetwork, PodSpec, eni_table
from vpcnet.agent.pools import NodePools
from vpcnet.cni import protocol as p
from vpcnet.cni.protocol import CniError
from vpcnet.domain import IpFamily
from vpcnet.errors import PodNetworkError, VpcnetError
from vpcnet.settings import AgentSettings

log = logging.getLogger("vpcnet.agent.cni")


class CniService:
    def __init__(
        self,
        settings: AgentSettings,
        ipam: Ipam,
        podnet: PodNetwork,
        checkpoint: Checkpoint,
        spool: Spool,
        is_ready: Callable[[], bool],
        on_change: Callable[[], None] | None,
        can_grow: Callable[[], str],
        ipam6: Ipam6 | None = None,
        family: Callable[[], IpFamily] = lambda: IpFamily.IPV4,
        can_grow6: Callable[[], str] = lambda: "no IPv6 prefix can come",
    ) -> None:
        self.settings = settings
        self.can_grow = can_grow  # "" while the control plane can add IPs, else why not
        self.can_grow6 = can_grow6  # "" while a /80 can still come, else why not
        self.family = family
        self.ipam = ipam
        self.ipam6 = ipam6 if ipam6 is not None else Ipam6()
        self.pools = NodePools(ipam, self.ipam6)  # what the checkpoint holds
        self.podnet = podnet
        self.checkpoint = checkpoint
        self.spool = spool
        self.is_ready = is_ready
        self.on_change = on_change
        self.clock = PhaseClock()  # per-request phase durations
        self._reaper = ThreadPoolExecutor(2, thread_name_prefix="cni-reap")
        self._dying: dict[AttachmentKey, Future[None]] = {}
        self._dying_lock = threading.Lock()

    def status(self, budget: float) -> dict[str, Any]:
        if not self.is_ready():
            raise CniError(p.ERR_NOT_AVAILABLE, "vpcnet agent not ready", "the node's ENIs are not programmed yet")
        # Per wanted family: a dual pod needs both, so either one missing fails its ADD.
        family = self.family()
        why = self.ipam.outlook(budget, self.can_grow) if family.wants_ipv4 else ""
        if why:
            raise CniError(p.ERR_NOT_AVAILABLE, "no IP can be had on this node", why)
        why6 = self.ipam6.outlook(self.can_grow6) if family.wants_ipv6 else ""
        if why6:
            raise CniError(p.ERR_NOT_AVAILABLE, "no IPv6 address can be had on this node", why6)
        return {"ok": True}

    def add(self, req: Request) -> dict[str, Any]:
        assert req.key is not None
        if not self.is_ready():
            raise CniError(p.ERR_TRY_AGAIN, "vpcnet agent not ready", "the node's ENIs are not programmed yet")
        self.replay_spooled(req.key)  # a DEL spooled for this key must go first
        self._await_dying(req.key)  # and the veth of its last DEL must be gone
        self._check_netns(req.netns)
        with self.clock.timed("ip"):
            alloc, alloc6, taken = self._allocate(req)
        spec = _pod_spec(req, alloc, alloc6, req.mtu or self.settings.mtu)
        # Durable first: nothing is programmed for an IP the checkpoint does not hold.
        # Should the agent die after the fsync, the restarted agent knows the IP is
        # taken and the runtime's DEL (which follows every failed ADD) frees it.
        try:
            with self.clock.timed("checkpoint"):
                self.checkpoint.sync(self.pools)
            with self.clock.timed("netlink"):
                link = self.podnet.setup(spec)  # rolls itself back on failure
        except BaseException:
            self._unwind(req.key, taken)
            raise
        self._changed()
        reply: dict[str, Any] = {
            "ok": True,
            "hostIf": link.host_ifname,
            "hostMac": link.host_mac,
            "podMac": link.pod_mac,
            "mtu": link.mtu,
        }
        if alloc is not None:
            reply.update(ip=str(alloc.ip), gateway=p.POD_GATEWAY, eni=alloc.eni.eni_id)
        if alloc6 is not None:
            reply.update(ip6=str(alloc6.ip), gateway6=p.POD_GATEWAY6, eni6=alloc6.eni.eni_id)
        return reply

    def _allocate(self, req: Request) -> tuple[Allocation | None, Allocation6 | None, tuple[str, ...]]:
        """The key's addresses of the node's families, both or neither; also which
        families this call took fresh (what a failure later must give back)."""
        assert req.key is not None
        family = self.family()
        taken: list[str] = []
        alloc: Allocation | None = None
        alloc6: Allocation6 | None = None
        deadline = time.monotonic() + req.budget
        try:
            if family.wants_ipv4:
                fresh = self.ipam.get(req.key) is None
                alloc = self.ipam.allocate(req.key, req.pod_namespace, req.pod_name,
                                           wait=req.budget, can_grow=self.can_grow)
                if fresh:
                    taken.append("ipv4")
            if family.wants_ipv6:
                fresh = self.ipam6.get(req.key) is None
                alloc6 = self.ipam6.allocate(req.key, req.pod_namespace, req.pod_name,
                                             wait=max(0.0, deadline - time.monotonic()),
                                             can_grow=self.can_grow6)
                if fresh:
                    taken.append("ipv6")
        except BaseException:
            self._unwind(req.key, tuple(taken))  # nothing half-done
            raise
        return alloc, alloc6, tuple(taken)

    def _unwind(self, key: AttachmentKey, taken: tuple[str, ...]) -> None:
        """Give back what a failed ADD took fresh (an address the key held before stays)."""
        if not taken:
            return
        if "ipv4" in taken:
            self.ipam.release(key)
        if "ipv6" in taken:
            self.ipam6.release(key)
        self._quietly(lambda: self.checkpoint.sync(self.pools))

    def delete(self, key: AttachmentKey) -> None:
        """The DEL the plugin sent; one it spooled earlier for the key is then done with too."""
        self._delete(key)
        self.spool.remove(key)

    def replay_spooled(self, key: AttachmentKey) -> int:
        """Run the spooled DEL of ``key`` if there is one (caller holds the key lock)."""
        if not self.spool.has(key):
            return 0
        self._delete(key)
        self.spool.remove(key)
        log.info("replayed the DEL of %s spooled while the agent was down", key)
        return 1

    def _delete(self, key: AttachmentKey) -> None:
        """Cut the pod off and free its IP; the veth is destroyed in the background.

        The answer does not wait for the veth's destruction (an RCU grace period in
        the kernel): once its route and rules are gone and it is down, the pod is
        unreachable, and its IP stays in the cooldown far longer than the destruction
        takes. A later ADD or DEL of the same key waits for it (``_await_dying``), and
        ``close`` waits for all of them.
        """
        self._await_dying(key)
        alloc = self.ipam.get(key)
        alloc6 = self.ipam6.get(key)
        with self.clock.timed("netlink"):
            self.podnet.teardown(
                key, alloc.ip if alloc else None, eni_table(alloc.eni) if alloc else None, keep_link=True,
                ip6=alloc6.ip if alloc6 else None, table6=eni_table(alloc6.eni) if alloc6 else None,
                ip6_link_mac=alloc6.eni.mac if alloc6 else "",
            )
        if alloc is not None:
            self.ipam.release(key)
        if alloc6 is not None:
            self.ipam6.release(key)
        with self.clock.timed("checkpoint"):
            # Unconditionally: when an earlier write failed after the release (a full
            # disk), a retried DEL finds no allocation but must still make it durable.
            self.checkpoint.sync(self.pools)
        if alloc is not None or alloc6 is not None:
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

    def close(self) -> None:
        """Wait for the veths being destroyed: none is left half-destroyed."""
        self._reaper.shutdown(wait=True)

    def wait_idle(self) -> None:
        """Block until every veth a DEL left to the background is destroyed."""
        with self._dying_lock:
            pending = list(self._dying.values())
        for f in pending:
            f.result()

    def check(self, req: Request) -> dict[str, Any]:
        assert req.key is not None
        alloc = self.ipam.get(req.key)
        alloc6 = self.ipam6.get(req.key)
        if alloc is None and alloc6 is None:
            raise CniError(p.ERR_CHECK_FAILED, "no IP is assigned to this attachment", str(req.key))
        held = alloc.ip if alloc else None
        held6 = alloc6.ip if alloc6 else None
        if held != req.expect_ip:
            raise CniError(p.ERR_CHECK_FAILED, "IP differs from prevResult", f"assigned {held}, prevResult {req.expect_ip}")
        if held6 != req.expect_ip6:
            raise CniError(p.ERR_CHECK_FAILED, "IPv6 differs from prevResult",
                           f"assigned {held6}, prevResult {req.expect_ip6}")
        self._check_netns(req.netns)
        try:
            self.podnet.check(_pod_spec(req, alloc, alloc6, req.mtu or self.settings.mtu))
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

    def gc(self, valid: frozenset[AttachmentKey]) -> dict[str, Any]:
        """Tear down every attachment not in ``valid`` (the caller replayed the spool first)."""
        failures = []
        released = 0
        keys = dict.fromkeys([a.key for a in self.ipam.allocations()] + [a.key for a in self.ipam6.allocations()])
        for key in keys:
            if key in valid:
                continue
            try:
                self._delete(key)
                released += 1
            except VpcnetError as e:  # keep going: remove as much as possible
                failures.append(f"{key}: {e}")
        if failures:
            raise CniError(p.ERR_POD_NETWORK, f"GC could not remove {len(failures)} attachments", "; ".join(failures)[:2000])
        return {"ok": True, "released": released}

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



def _pod_spec(req: Request, alloc: Allocation | None, alloc6: Allocation6 | None, mtu: int) -> PodSpec:
    assert req.key is not None
    return PodSpec(
        req.key, req.netns,
        alloc.ip if alloc else None, eni_table(alloc.eni) if alloc else None, mtu,
        ip6=alloc6.ip if alloc6 else None,
        table6=eni_table(alloc6.eni) if alloc6 else None,
        ip6_link_mac=alloc6.eni.mac if alloc6 else "",
    )
