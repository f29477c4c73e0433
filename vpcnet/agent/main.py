"""The node agent process (``vpcnet agent``, the DaemonSet): composes the agent's parts.

Start-up order matters:

1. load the local checkpoint (the pool and its assignments survive restarts);
2. start the CNI socket server at once, so DEL and CHECK work while the rest starts
   (ADD is refused with "not ready" until the host is programmed);
3. read instance metadata (who am I, primary IP, VPC CIDRs);
4. follow Redis: read the node's ENIs, subscribe to its ``changed`` channel;
5. program the host (links, tables, rules, SNAT), hand the programmed ENIs to the IPAM;
6. install the plugin, write the conflist, report ready in Redis.

What Redis says is checked against the node before it touches a running pod
(invariant 7): an ENI that holds assigned IPs stays programmed while metadata or its
live link says it is attached, whatever Redis lost (``vpcnet.agent.truth``), and the
store version read is compared with the newest one this agent programmed to notice a
store that went back in time (``vpcnet.agent.history``); the report says so.

Then it loops: every wake-up (a ``changed`` message, within a second) or resync
interval it converges again. Redis being unreachable never stops ADD/DEL: the pool is
local (checkpoint) and the Redis mirror catches up when Redis is back. SIGTERM stops
the loop, the server and the mirror gracefully; the conflist stays, so pods on the node
keep working across agent upgrades.

The agent never imports boto3 and holds no AWS credentials.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vpcnet.agent import conflist
from vpcnet.agent.checkpoint import Checkpoint
from vpcnet.agent.history import HistoryFile, HistoryMark, observe
from vpcnet.agent.hostnet import HostNetwork
from vpcnet.agent.hostplan import HostPlan, plan_host
from vpcnet.agent.imds import ImdsClient
from vpcnet.agent.ipam import Ipam
from vpcnet.agent.ipam6 import Ipam6
from vpcnet.agent.metadata import InstanceIdentity
from vpcnet.agent.pools import NodePools, released_in
from vpcnet.agent.redis_sync import AgentReport, NodeState, RedisSync
from vpcnet.agent.truth import corroborate, disputed, held_enis, resolve_enis
from vpcnet.atomicfile import Sync, atomic_write_bytes
from vpcnet.credentials.provider import node_credentials
from vpcnet.domain import EniRecord, IpFamily, IPv4Net
from vpcnet.errors import ConfigError, ImdsError, PermanentError, StateError, VpcnetError
from vpcnet.settings import AgentSettings
from vpcnet.state.records import NodeRecord, StoreVersion

log = logging.getLogger("vpcnet.agent")

_RETRY_SECONDS = 1.0  # while ENIs are still attaching or a step failed
# While an ENI of the desired state has no link yet, its link is looked for this often
# between passes: pods waiting on that ENI get its IPs as soon as it is plugged, not up
# to a retry later. Only then: a node with no ENI pending never polls.
_LINK_POLL_SECONDS = 0.1


def agent_version() -> str:
    try:
        from importlib.metadata import version

        return version("vpcnet")
    except Exception:  # not installed as a distribution (running from a tree)
        return "0+unknown"


@dataclass(frozen=True, slots=True)
class Programmed:
    """What the last successful pass programmed."""

    version: StoreVersion  # the store's write it programmed (with ENIs kept against it)
    enis: tuple[EniRecord, ...]
    missing: tuple[EniRecord, ...]  # in Redis, but no link with that MAC yet
    plan: HostPlan

    @property
    def generation(self) -> int:
        return self.version.generation


class Agent:
    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.version = agent_version()
        self.wake = threading.Event()
        self._stop = threading.Event()
        self.ready = False
        # ADDs are served once the node was ready and while its pool has programmed ENIs:
        # an ENI the control plane just added (its link not plugged yet) makes the report
        # not-ready, but the IPs of the ENIs already programmed stay good to hand out.
        self.serving = False
        self.error = ""
        self.programmed: Programmed | None = None
        self.checkpoint = Checkpoint(settings.checkpoint_path)
        self.pools = self._load_pools()
        self.ipam = self.pools.ipam
        self.ipam6 = self.pools.ipam6
        self.history = HistoryFile(settings.checkpoint_path)
        self.mark: HistoryMark = self.history.load()
        self._truth_said: tuple[tuple[str, ...], ...] = ((), (), ())
        self.hostnet = HostNetwork(settings.host_netns, veth_prefix=settings.veth_prefix)
        self.imds = ImdsClient(settings.imds_url)
        self.sync = RedisSync(
            settings.redis_url,
            settings.cluster_name,
            settings.node_name,
            self.ipam,
            wake=self.wake,
            credentials=node_credentials(settings),
            ipam6=self.ipam6,
            # release-ok names only releases the checkpoint on disk holds (invariant 8).
            durable=lambda: released_in(self.checkpoint.durable()),
        )
        self._identity: InstanceIdentity | None = None
        self._vpc_cidrs: tuple[IPv4Net, ...] = ()
        self._plugin_installed = not settings.install_plugin
        self._last_full_mirror = 0.0
        self._host_ensured_at = -float("inf")  # monotonic, of the last host pass
        self._node_fields: Mapping[str, str] = {}  # the control plane's, as last read
        self._server: Any = None
        self._server_thread: threading.Thread | None = None
        self.conflist_path = Path(settings.cni_conf_dir) / settings.cni_conf_name

    # -- parts -------------------------------------------------------------------------

    def _load_pools(self) -> NodePools:
        # A corrupt checkpoint raises CheckpointError (permanent): starting from an
        # empty pool could hand out IPs that running pods hold.
        data = self.checkpoint.load()
        if data is None:
            log.info("no checkpoint at %s: starting with an empty pool", self.checkpoint.path)
            return NodePools(Ipam(cooldown_seconds=self.settings.ip_cooldown_seconds), Ipam6())
        pools = NodePools.from_checkpoint(data, cooldown_seconds=self.settings.ip_cooldown_seconds)
        stats = pools.ipam.stats()
        log.info("checkpoint loaded: %d assigned, %d free, %d IPv6 assigned",
                 stats.assigned, stats.free, len(pools.ipam6.allocations()))
        return pools

    def _start_cni_server(self) -> None:
        from vpcnet.agent.cniserver import CniServer
        from vpcnet.agent.cniserver.timing import RequestTiming
        from vpcnet.agent.podnet import PodNetwork
        from vpcnet.cni.plugin import main as plugin_main

        podnet = PodNetwork(self.settings)
        observe: Callable[[RequestTiming], None] | None = None
        if self.settings.metrics_port:
            from vpcnet.observability.agent import observe_cni_request

            observe = observe_cni_request
        self._server = CniServer(
            self.settings, self.ipam, podnet, self.checkpoint, is_ready=self.is_ready,
            observe=observe, can_grow=self.can_grow,
            ipam6=self.ipam6, family=self.family, can_grow6=self.can_grow6,
            plugin_main=plugin_main,  # the launcher's fast path runs the plugin's code here
        )
        # Bind here, not in the thread: a second agent on the node must fail loudly.
        self._server.bind()
        self._server_thread = threading.Thread(
            target=self._server.serve_forever, name="cni-server", daemon=True
        )
        self._server_thread.start()
        log.info("CNI server listening on %s", self.settings.socket_path)

    def is_ready(self) -> bool:
        return self.ready or self.serving

    def can_grow(self) -> str:
        """"" while the control plane can still add IPs to this node; else why not (what
        an ADD that finds no IP coming reports instead of waiting)."""
        fields = self._node_fields
        if fields.get("error"):
            return f"the control plane cannot provision this node: {fields['error']}"
        if "no_growth" in fields:
            return fields["no_growth"]
        # A control plane that does not say: only warm and prefix mode grow the pool.
        if fields.get("mode", "full") in ("warm", "prefix"):
            return ""
        return "full mode: every ENI and IP the instance type allows is already attached"

    def family(self) -> IpFamily:
        """The families this node's pods get (the control plane's ``ip_family``; "" and,
        until the pass that reads it reports the error, a bad value: ipv4)."""
        try:
            return IpFamily.parse(self._node_fields.get("ip_family", ""))
        except ValueError:
            return IpFamily.IPV4

    def can_grow6(self) -> str:
        """"" while a /80 can still come to this node (the control plane delegates one
        to every ipv6/dual node in any mode); else why not: its error (e.g. a subnet
        without an IPv6 CIDR) or its ``no_growth``."""
        fields = self._node_fields
        if fields.get("error"):
            return f"the control plane cannot provision this node: {fields['error']}"
        return fields.get("no_growth6") or fields.get("no_growth", "")

    # -- lifecycle ---------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()

    def run(self) -> int:
        self._start_cni_server()
        self.sync.start()
        try:
            woken = False
            while not self._stop.is_set():
                wait = self.reconcile(woken=woken)
                woken = self._wait(wait)
                self.wake.clear()
        finally:
            self._shutdown()
        return 0

    def _wait(self, seconds: float) -> bool:
        """Until woken, ``seconds`` passed or a link the last pass missed appeared; True
        when woken (a publish: the store changed)."""
        awaited = self._awaited_links()
        if not awaited:
            return self.wake.wait(seconds)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.wake.wait(min(_LINK_POLL_SECONDS, left)):
                return True
            if self._link_appeared(awaited):
                return False
        return False

    def _awaited_links(self) -> dict[str, str]:
        """MAC -> ENI id of the ENIs the last pass found without a link (none after a
        failed pass: its ``programmed`` is older, the plain retry applies)."""
        if self.error or self.programmed is None:
            return {}
        return {e.mac.lower(): e.eni_id for e in self.programmed.missing}

    def _link_appeared(self, awaited: Mapping[str, str]) -> bool:
        log.debug("link poll: looking for %s", ", ".join(sorted(awaited.values())))
        try:
            links = self.hostnet.links_by_mac()
        except VpcnetError as e:
            log.debug("link poll failed (%s): the next pass tells", e)
            return True
        plugged = [mac for mac in awaited if mac in links]
        for mac in plugged:
            log.info("ENI %s: its link %s appeared, pass now", awaited[mac], links[mac].ifname)
        return bool(plugged)

    def _shutdown(self) -> None:
        log.info("agent stopping")
        if self._server is not None:
            self._server.shutdown()
        if self._server_thread is not None:
            self._server_thread.join(5)
        try:
            self.checkpoint.sync(self.pools)
        except VpcnetError as e:
            log.error("final checkpoint write failed: %s", e)
        try:
            self.sync.flush()
        except StateError as e:
            log.warning("final mirror flush failed (reconciled at next start): %s", e)
        self.sync.stop()

    # -- the converging pass ---------------------------------------------------------

    def reconcile(self, *, woken: bool = False) -> float:
        """One pass; returns how long to wait before the next one (unless woken).
        ``woken``: the pass was woken by a publish (see ``_host_pass_due``)."""
        try:
            self._reconcile(woken)
            self.error = ""
        except PermanentError as e:
            # The node cannot take pods until a human or the control plane fixes this.
            log.error("unrecoverable: %s", e)
            self.error = str(e)
            self.ready = self.serving = False
            if conflist.remove_conflist(self.conflist_path):
                log.warning("conflist removed: the node takes no new pods")
        except VpcnetError as e:
            log.warning("pass failed, retrying: %s", e)
            self.error = str(e)
        except Exception as e:  # a bug must not kill the agent serving DEL
            log.exception("unexpected error in the agent loop")
            self.error = f"{type(e).__name__}: {e}"
        self._report()
        if self.error or not self.ready:
            return _RETRY_SECONDS
        return self.settings.resync_seconds

    def _reconcile(self, woken: bool) -> None:
        state = self._read_state()
        if state is not None:
            self._node_fields = dict(state.node)
            self.ipam6.poke()  # waiting ADDs look at the node's outlook again
            raw_family = state.node.get("ip_family", "")
            try:
                IpFamily.parse(raw_family)
            except ValueError:
                raise ConfigError(f"node {self.settings.node_name} has an unknown ip_family {raw_family!r}") from None
        identity = self._read_identity()
        if state is not None and state.configured:
            expected = NodeRecord.from_redis(state.node).instance_id
            if expected and expected != identity.instance_id:
                raise PermanentError(
                    f"Redis says node {self.settings.node_name} is {expected}, "
                    f"metadata says {identity.instance_id}"
                )
            links = {mac: li.ifname for mac, li in self.hostnet.links_by_mac().items()}
            desired, version = self._checked_against_node(state.enis, links), state.version
            mark = observe(self.mark, version)
            if mark.rollback and mark.rollback != self.mark.rollback:
                log.error(
                    "the store went back: it holds %s, this agent programmed %s; running "
                    "pods keep their ENIs, the control plane starts a new epoch",
                    version.describe(), self.mark.highest.describe(),
                )
            if mark.rollback and mark.rollback == version.epoch:
                desired = self._corroborated(desired)
        elif self.ipam.enis():
            # Redis unreachable or emptied (lost): keep what we know; never unprogram
            # running pods because the store is gone (invariant 4).
            links = {mac: li.ifname for mac, li in self.hostnet.links_by_mac().items()}
            desired = tuple(self.ipam.enis())
            version = self.programmed.version if self.programmed else StoreVersion()
            mark = self.mark
        else:
            log.info("node %s not configured yet", self.settings.node_name)
            self.ready = self.serving = False
            return
        present = tuple(e for e in desired if e.mac.lower() in links)
        missing = tuple(e for e in desired if e.mac.lower() not in links)
        for eni in missing:
            log.info("ENI %s (%s) has no link yet (attaching?)", eni.eni_id, eni.mac)
        plan = plan_host(
            present,
            links,
            primary_ip=identity.primary_ip,
            vpc_cidrs=self._vpc_cidrs,
            snat=self.settings.snat,
            snat_exclusions=[IPv4Net(c) for c in self.settings.snat_exclusions],
            mtu=self.settings.mtu,
            veth_prefix=self.settings.veth_prefix,
            imds_redirect_port=self.settings.imds_redirect_port,
            # Read only when needed: ENIs with /80s route IPv6 via the node's gateway.
            ipv6_gateway=self.hostnet.ipv6_default_gateway() if any(e.ipv6_prefixes for e in present) else None,
        )
        # Only programmed ENIs feed the pool. When the host side is the one the last pass
        # programmed (the same links, tables and rules: a pod IP is in none of them),
        # the write only moved addresses: waiting ADDs get them now, not after the host
        # pass (its netlink dumps take 20-200 ms with a burst's pods on the node), which
        # runs for drift only when due (``_host_pass_due``).
        if self.programmed is not None and _host_side(self.programmed.plan) == _host_side(plan):
            log.debug("host plan unchanged: the pool follows the ENIs before the host pass")
            self._feed_pools(present)
            if self._host_pass_due(woken):
                self._ensure_host(plan)
            else:
                log.debug("host pass skipped: a woken pass that only moved addresses")
        else:
            self._ensure_host(plan)
            self._feed_pools(present)
        if state is not None:
            confirmed = self.ipam.confirm_release(state.release_req)
            confirmed6 = self.ipam6.confirm_release(state.release_req6)
            # The release on disk first: a crash before release-ok leaves the IP in the
            # restarted pool, never in use by a pod while EC2 takes it back.
            self.checkpoint.sync(self.pools)
            self.sync.confirm_released(confirmed)
            self.sync.confirm_released6(confirmed6)
        else:
            self.checkpoint.sync(self.pools)
        self.history.save(mark)  # before the report names it
        self.mark = mark
        self.programmed = Programmed(version, present, missing, plan)
        ready = bool(present) and not missing
        if ready:
            self._ensure_plugin()
            path = self.conflist_path
            bin_dir = Path(self.settings.cni_bin_dir)
            doc = conflist.plan_conflist(
                agent_socket=self.settings.agent_socket,
                log_file=self.settings.log_file,
                mtu=self.settings.mtu,
                chained_plugins=self.settings.chained_plugins,
                chained_versions={
                    name: conflist.probe_versions(bin_dir, name)
                    for name in self.settings.chained_plugins
                },
            )
            if conflist.ensure_conflist(path, doc):
                log.info("conflist written to %s", path)
        self.ready = ready
        self.serving = bool(present) and (ready or self.serving)

    def _ensure_host(self, plan: HostPlan) -> None:
        self.hostnet.ensure(plan)
        self._host_ensured_at = time.monotonic()

    def _host_pass_due(self, woken: bool) -> bool:
        """Whether a pass whose host side is unchanged runs the host pass (drift repair).
        Not in a pass woken by a publish while the last host pass is recent and the last
        pass succeeded: during a burst each round's write wakes a pass, and a host pass
        there (hundreds of ms with a burst's ADDs in this process) would hold the next
        round's IPs back from the waiting ADDs. The periodic pass (not woken), any pass
        after a failed one, and any pass a resync interval after the last host pass run
        it, so drift is repaired within a resync interval as before."""
        if not woken or self.error:
            return True
        return time.monotonic() - self._host_ensured_at >= self.settings.resync_seconds

    def _feed_pools(self, present: tuple[EniRecord, ...]) -> None:
        """Both pools follow the programmed ENIs."""
        diff = self.ipam.set_enis(present)
        if diff.added_ips:
            log.info("pool: %d IPs added, %d ADDs waiting", len(diff.added_ips), self.ipam.demand)
        for alloc in diff.vanished:
            log.error("IP %s of %s left the node's ENIs while assigned", alloc.ip, alloc.key)
        diff6 = self.ipam6.set_enis(present)
        for alloc6 in diff6.vanished:
            log.error("IPv6 %s of %s: its /80 %s left the node's ENIs while assigned",
                      alloc6.ip, alloc6.key, alloc6.prefix)

    def _checked_against_node(
        self, desired: tuple[EniRecord, ...], links: dict[str, str]
    ) -> tuple[EniRecord, ...]:
        """Redis's ENIs, except where they would unprogram or re-point running pods while
        metadata or the live links say the pods' ENI is still attached."""
        held = held_enis([a.eni for a in self.ipam.allocations()] + [a.eni for a in self.ipam6.allocations()])
        attached: dict[str, str] | None = None
        if disputed(desired, held):
            try:
                attached = self.imds.attached_enis()
            except ImdsError as e:
                log.warning("metadata unreadable (%s): the live links decide", e)
        verdict = resolve_enis(desired, held, attached, links)
        said = (verdict.kept, verdict.ignored, verdict.gone)
        if said == self._truth_said:
            return verdict.enis  # said already (this runs every pass while it lasts)
        self._truth_said = said
        for eni_id in verdict.kept:
            log.warning(
                "ENI %s holds running pods' IPs and is still attached, but Redis lacks or "
                "contradicts it: kept as programmed", eni_id,
            )
        for eni_id in verdict.ignored:
            log.warning("Redis record of %s contradicts an ENI in use: ignored", eni_id)
        for eni_id in verdict.gone:
            log.warning("ENI %s of running pods is gone per metadata and links: unprogrammed", eni_id)
        return verdict.enis

    def _corroborated(self, desired: tuple[EniRecord, ...]) -> tuple[EniRecord, ...]:
        """While the store is known to have gone back, pool IPs need metadata's word: an
        old record may list IPs EC2 has since unassigned."""
        try:
            return corroborate(desired, self.imds.interfaces())
        except ImdsError as e:
            # No IP beyond what the pool already follows: nothing new is handed out.
            log.warning("metadata unreadable during a rollback (%s): the pool does not grow", e)
            known = {ip for e in self.ipam.enis() for ip in e.pod_ips()}
            known6 = set(self.ipam6.prefixes())
            return tuple(
                replace(e, ips=tuple(ip for ip in e.ips if ip in known),
                        prefixes=tuple(p for p in e.prefixes if set(p) <= known),
                        ipv6_prefixes=tuple(p for p in e.ipv6_prefixes if p in known6))
                for e in desired
            )

    def _read_state(self) -> NodeState | None:
        try:
            return self.sync.read_node()
        except StateError as e:
            log.warning("%s; serving from the local pool", e)
            return None

    def _read_identity(self) -> InstanceIdentity:
        if self._identity is None:
            identity = self.imds.identity()
            primary = self.imds.interface(identity.primary_mac)
            cidrs = [IPv4Net(c) for c in self.settings.vpc_cidrs] or list(primary.vpc_cidrs)
            if not cidrs:
                raise PermanentError("no VPC CIDR from metadata or VPCNET_AGENT_VPC_CIDRS")
            self._vpc_cidrs = tuple(cidrs)
            self._identity = identity
            log.info(
                "instance %s, primary %s (%s), VPC %s",
                identity.instance_id,
                identity.primary_ip,
                identity.primary_mac,
                ", ".join(map(str, cidrs)),
            )
        return self._identity

    def _ensure_plugin(self) -> None:
        if self._plugin_installed:
            return
        from vpcnet.install import install_plugin

        # The socket as the conflist names it: the launcher's fast path hands each
        # invocation to this agent, which runs the plugin's code in-process.
        plugin = install_plugin(Path(self.settings.cni_bin_dir), Path(self.settings.cni_runtime_dir),
                                agent_socket=self.settings.agent_socket)
        log.info("CNI plugin installed at %s", plugin)
        self._plugin_installed = True

    # -- reporting -----------------------------------------------------------------------

    def _report(self) -> None:
        if self._server is not None and self._server.failure:  # nobody answers the plugin
            self.ready, self.error = False, f"CNI server stopped: {self._server.failure}"
            self.serving = False
        programmed = self.programmed.version if self.programmed else StoreVersion()
        report = AgentReport(
            ready=self.ready,
            generation=programmed.generation,
            stats=self.ipam.stats(),
            version=self.version,
            error=self.error,
            epoch=programmed.epoch,
            write_id=programmed.write_id,
            rollback=self.mark.rollback,
            assigned6=len(self.ipam6.allocations()),
        )
        now = time.time()
        write_status(Path(self.settings.status_path), report, now)
        if now - self._last_full_mirror >= self.settings.resync_seconds:
            # Periodic full rewrite: repairs any drift of the mirror (e.g. a hand edit).
            self._last_full_mirror = now
            self.sync.request_full_mirror()
        try:
            self.sync.report(report)
        except StateError as e:
            log.debug("agent report deferred: %s", e)


def _host_side(plan: HostPlan) -> HostPlan:
    """``plan`` without the ENIs' pod addresses (IPv4 IPs and /28s): no link, table or
    rule of the host depends on them (a pod's own rule is made at its ADD)."""
    return replace(plan, links=tuple(
        replace(link, eni=replace(link.eni, ips=(), prefixes=())) for link in plan.links))


def write_status(path: Path, report: AgentReport, now: float) -> None:
    """The local status file behind ``vpcnet agent --check-ready`` (readiness probe)."""
    doc = {
        "ready": report.ready,
        "epoch": report.epoch,
        "generation": report.generation,
        "heartbeat": now,
        "free": report.stats.free,
        "assigned": report.stats.assigned,
        "cooldown": report.stats.cooldown,
        "assigned6": report.assigned6,
        "error": report.error,
        "pid": os.getpid(),
    }
    try:
        # Atomic for the probe, not synced: a crash loses only a heartbeat.
        atomic_write_bytes(path, json.dumps(doc).encode(), 0o600, sync=Sync.NONE)
    except OSError as e:
        log.warning("cannot write status file %s: %s", path, e)


def check_ready(path: Path, max_age: float, now: float) -> tuple[bool, str]:
    """Readiness probe: the agent is ready and its loop ran recently."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return False, f"no status: {e}"
    age = now - float(doc.get("heartbeat", 0))
    if age > max_age:
        return False, f"agent loop stalled ({age:.0f}s since the last pass)"
    if not doc.get("ready"):
        return False, f"not ready: {doc.get('error') or 'node not configured yet'}"
    return True, f"ready (generation {doc.get('generation')}, {doc.get('free')} free)"


def run_agent(settings: AgentSettings, *, install_signals: bool = True) -> int:
    try:
        agent = Agent(settings)
    except PermanentError as e:
        # e.g. a corrupt checkpoint: refuse to run rather than risk reusing held IPs.
        log.error("agent cannot start: %s", e)
        conflist.remove_conflist(Path(settings.cni_conf_dir) / settings.cni_conf_name)
        return 1
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: agent.stop())
    if settings.metrics_port:
        from vpcnet.observability.agent import start_agent_metrics

        try:
            start_agent_metrics(settings.node_name, agent, settings.metrics_port)
            log.info("metrics served on port %d", settings.metrics_port)
        except OSError as e:  # pods' networking matters more than metrics
            log.error("metrics not served on port %d: %s", settings.metrics_port, e)
    return agent.run()
