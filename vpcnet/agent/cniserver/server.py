"""``CniServer``: the agent's CNI socket, its commands and its spool, put together.

At start, before serving, pod rules of IPs the checkpoint says no pod holds, and that
no interface routes, are removed (an agent that forgot a pod, e.g. one that died
before this fix between programming it and its checkpoint, left them: DEL then only
removes its veth). For IPv6 the same goes for the pod rules and NDP proxy entries of
every address of the node's /80s that the checkpoint does not assign (the node would
otherwise answer NDP for an address no pod has). Then the spool is replayed, and swept
every few seconds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vpcnet.agent.checkpoint import Checkpoint
from vpcnet.agent.cniserver.dispatch import Dispatcher
from vpcnet.agent.cniserver.inprocess import InProcess, PluginMain
from vpcnet.agent.cniserver.locks import Gate, KeyLocks
from vpcnet.agent.cniserver.service import CniService
from vpcnet.agent.cniserver.spool import Spool
from vpcnet.agent.cniserver.sweeper import SpoolSweeper
from vpcnet.agent.cniserver.timing import RequestTiming
from vpcnet.agent.cniserver.transport import UnixSocketServer
from vpcnet.agent.ipam import Ipam
from vpcnet.agent.ipam6 import Ipam6
from vpcnet.agent.podnet import PodNetwork
from vpcnet.domain import IpFamily, IPv6, IPv6Net
from vpcnet.errors import PodNetworkError, VpcnetError
from vpcnet.settings import AgentSettings

log = logging.getLogger("vpcnet.agent.cni")


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
        ipam6: Ipam6 | None = None,
        family: Callable[[], IpFamily] = lambda: IpFamily.IPV4,
        can_grow6: Callable[[], str] = lambda: "no IPv6 prefix can come",
        plugin_main: PluginMain | None = None,
    ) -> None:
        self.podnet = podnet
        socket_path = Path(settings.socket_path)
        self.spool = Spool(Path(pending_dir or socket_path.parent / "pending-del"))
        self.service = CniService(settings, ipam, podnet, checkpoint, self.spool, is_ready, on_change, can_grow,
                                  ipam6, family, can_grow6)
        gate, keys = Gate(), KeyLocks()
        self.sweeper = SpoolSweeper(self.spool, self.service.replay_spooled, gate, keys)
        self.dispatcher = Dispatcher(self.service, self.sweeper, gate, keys, observe)
        # The launcher's fast path: the plugin's own code (``plugin_main``, i.e.
        # vpcnet.cni.plugin.main, handed in by the agent process) run here on the raw
        # invocation, for configs naming this agent's socket, log file and spool (see
        # inprocess). Without it, raw frames are answered "fallback".
        self.inprocess = (
            InProcess(self.dispatcher.handle, plugin_main, settings.agent_socket,
                      settings.log_file, os.path.abspath(self.spool.directory))
            if plugin_main is not None else None
        )
        self.transport = UnixSocketServer(socket_path, self.dispatcher.handle,
                                          self.inprocess.answer if self.inprocess is not None else None)
        # Taken now, while the pool is what the checkpoint says: by the time the
        # server starts, the agent may have added IPs from Redis it knows less about.
        self._unassigned_at_start = ipam.unassigned()
        # IPv6 has no free set to take (a cursor per /80): the /80s and the addresses
        # held, as the checkpoint says, and anything of the /80s no pod holds is a leftover.
        self._ipam6 = ipam6
        self._ipv6_at_start = _held6(ipam6) if ipam6 is not None else None

    # -- lifecycle -------------------------------------------------------------------------

    def bind(self) -> None:
        """Create the listening socket (mode 0600); fails if another agent serves it."""
        self.transport.bind()

    def serve_forever(self) -> None:
        """Bind (if needed), prepare, then serve until ``shutdown``.

        Preparing (forwarding on, leftover rules of unassigned IPs removed, spooled
        DELs replayed) never keeps the server from serving: each step logs its failure
        and is retried later by its own path. The serving loop restarts when it fails;
        should it end otherwise, the socket is removed and ``failure`` says why.
        """
        self.transport.serve_forever(self._prepare)

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
        try:
            removed = self._remove_leftovers6()
            if removed:
                log.warning("removed %d IPv6 pod rules and NDP proxy entries left behind for addresses no pod holds",
                            removed)
        except VpcnetError as e:  # the ADD of each such address removes them too
            log.error("removing leftover IPv6 pod rules and NDP proxy entries failed: %s", e)
        self.drain_pending()  # per entry: a bad one is logged and kept, never raised
        self.sweeper.start()

    def _remove_leftovers6(self) -> int:
        if self._ipam6 is None or self._ipv6_at_start is None:
            return 0
        prefixes, held = self._ipv6_at_start
        # Addresses held now count too: nothing should have allocated before serving,
        # but an address a pod holds is never swept, whatever took it.
        _, held_now = _held6(self._ipam6)
        return self.podnet.remove_leftovers6(prefixes, held | held_now)

    def shutdown(self) -> None:
        self.sweeper.stop()
        if not self.transport.stop():
            return
        self.service.close()  # no veth left half-destroyed
        self.transport.close()

    def wait_bound(self, timeout: float | None = None) -> bool:
        return self.transport.wait_bound(timeout)

    @property
    def serving(self) -> bool:
        """True while the loop accepts connections."""
        return self.transport.serving

    @property
    def failure(self) -> str:
        """Why the server stopped serving without shutdown ("" = it did not)."""
        return self.transport.failure

    @property
    def restarts(self) -> int:
        """Times the serving loop failed and was started again."""
        return self.transport.restarts

    @property
    def requests(self) -> int:
        """Requests served, for the agent's report and the benchmark."""
        return self.dispatcher.requests

    # -- requests ---------------------------------------------------------------------------

    def handle(self, raw: bytes) -> dict[str, Any]:
        """One wire request -> one reply; never raises."""
        return self.dispatcher.handle(raw)

    def drain_pending(self) -> int:
        """Replay every DEL the plugin spooled while the agent was unreachable."""
        return self.sweeper.drain(gated=True)

    def wait_idle(self) -> None:
        """Block until every veth a DEL left to the background is destroyed."""
        self.service.wait_idle()


def _held6(ipam6: Ipam6) -> tuple[frozenset[IPv6Net], frozenset[IPv6]]:
    """(the node's /80s, the IPv6 addresses pods hold) of the pool now."""
    return frozenset(ipam6.prefixes()), frozenset(a.ip for a in ipam6.allocations())
