"""The churn of the chaos run: pods on netns nodes, IPs on API-only nodes' stand-ins.

``PodChurn`` makes pods come and go on a node with a real agent as a runtime does (the
plugin exec'd with ADD, CHECK, DEL; a failed ADD or DEL is followed by DEL until it
succeeds). ``StandInAgent`` is an API-only node's agent: the real IPAM and Redis mirror of
``vpcnet.agent`` with EC2's attachments standing in for links. Both report to a
``ChurnHost`` (``vpcnet_sim.embedded.chaos.ChaosWorld``).
"""

from __future__ import annotations

import contextlib
import random
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from vpcnet.agent.ipam import AttachmentKey, Ipam
from vpcnet.agent.redis_sync import AgentReport, RedisSync
from vpcnet.errors import PoolExhausted, StateError
from vpcnet.state.records import StoreVersion
from vpcnet_sim.embedded.stack import EmbeddedStack, SimNode
from vpcnet_sim.runtime import CniError, Pod, PodRuntime

POD_NAMESPACE = "chaos"


@dataclass
class TrackedPod:
    node: str
    pod: Pod
    ip: str
    registered: bool = False  # in the Kubernetes emulator


class Tally:
    """Thread-safe counters (faults by kind, pod operations)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._c: Counter[str] = Counter()

    def add(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self._c[kind] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._c.items()))


# -- stand-in agents for API-only nodes ------------------------------------------------------


class StandInAgent:
    """An API-only node's agent: the real IPAM and Redis mirror, with EC2's attachments
    standing in for links. An ENI is "programmed" once EC2 says it is attached; the agent
    reports ready when all of the node's ENIs are, as the real agent does."""

    def __init__(self, stack: EmbeddedStack, node: SimNode, rng: random.Random) -> None:
        self.stack = stack
        self.node = node
        self.rng = rng
        self.ipam = Ipam(cooldown_seconds=stack.opts.ip_cooldown_seconds)
        self.sync = self._new_sync()
        self.ready = False
        self.programmed = StoreVersion()
        self._seq = 0
        self._passes = 0

    def _new_sync(self) -> RedisSync:
        return RedisSync(self.stack.redis.url, self.stack.opts.cluster, self.node.name,
                         self.ipam, wake=threading.Event())

    def restart(self) -> None:
        """A crash and restart: the pool comes back from the checkpoint, not from Redis."""
        self.sync.stop()
        self.ipam = Ipam.from_checkpoint(self.ipam.to_checkpoint(),
                                         cooldown_seconds=self.stack.opts.ip_cooldown_seconds)
        self.sync = self._new_sync()
        self.ready = False

    def step(self, attached: set[str], churn: bool, tally: Tally) -> None:
        self._passes += 1
        try:
            state = self.sync.read_node()
        except StateError:
            state = None
        if state is not None and state.configured:
            present = [e for e in state.enis if e.eni_id in attached]
            self.ipam.set_enis(present)
            self.programmed = state.version
            self.ready = len(present) == len(state.enis)
            confirmed = self.ipam.confirm_release(state.release_req)
            with contextlib.suppress(StateError):
                self.sync.confirm_released(confirmed)
        # else: Redis unreachable or emptied: keep serving the pool we have.
        if churn and self.ready and self.rng.random() < 0.3:
            self._churn(tally)
        if self._passes % 10 == 0:
            self.sync.request_full_mirror()
        with contextlib.suppress(StateError):
            self.sync.flush()
        with contextlib.suppress(StateError):
            v = self.programmed
            self.sync.report(AgentReport(self.ready, v.generation, self.ipam.stats(),
                                         "chaos-standin", epoch=v.epoch, write_id=v.write_id))

    def _churn(self, tally: Tally) -> None:
        held = self.ipam.allocations()
        cap = max(1, self.ipam.stats().total // 3)
        if held and (len(held) >= cap or self.rng.random() < 0.4):
            self.ipam.release(self.rng.choice(held).key)
            tally.add("standin-release")
            return
        self._seq += 1
        key = AttachmentKey(secrets.token_hex(32), "eth0")
        try:
            self.ipam.allocate(key, POD_NAMESPACE, f"{self.node.name}-p{self._seq}")
            tally.add("standin-assign")
        except PoolExhausted:
            tally.add("standin-pool-exhausted")

    def assigned(self) -> dict[str, str]:
        return {str(a.ip): a.key.container_id for a in self.ipam.allocations()}

    def close(self) -> None:
        self.sync.stop()


class StandInDriver(threading.Thread):
    def __init__(self, world: ChurnHost, interval: float = 0.5) -> None:
        super().__init__(name="chaos-standins", daemon=True)
        self.world = world
        self.interval = interval
        self.churn = False
        self.stop_event = threading.Event()
        self._lock = threading.Lock()  # a restart never runs in the middle of a step

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.step_all()

    def step_all(self) -> None:
        attached: dict[str, set[str]] = {}
        for view in self.world.stack.ec2.instances_view():
            attached[view["instance_id"]] = {
                e["eni_id"] for e in view.get("enis", []) if e.get("status") == "attached"
            }
        with self._lock:
            for agent in list(self.world.standins.values()):
                agent.step(attached.get(agent.node.instance_id, set()), self.churn,
                           self.world.tally)

    def restart(self, agent: StandInAgent) -> None:
        with self._lock:
            agent.restart()

    def pools(self) -> dict[str, dict[str, str]]:
        """Each stand-in's held IPs (ip -> container id), between two steps."""
        with self._lock:
            return {name: a.assigned() for name, a in list(self.world.standins.items())}


# -- pod churn on netns nodes --------------------------------------------------------------


class PodChurn(threading.Thread):
    """Pods come and go on one netns node as a runtime makes them: ADD (a failure is
    followed by DEL until it succeeds), CHECK, DEL (retried until it succeeds)."""

    def __init__(self, world: ChurnHost, node: SimNode, max_alive: int, seed: int) -> None:
        super().__init__(name=f"chaos-churn-{node.name}", daemon=True)
        self.world = world
        self.node = node
        self.max_alive = max_alive
        self.rng = random.Random(seed)
        self.alive: list[TrackedPod] = []
        self.to_delete: list[Pod] = []  # DEL still owed (failed ADD or failed DEL)
        self.stop_event = threading.Event()
        self._seq = 0

    def run(self) -> None:
        while not self.stop_event.wait(self.rng.uniform(0.4, 1.2)):
            try:
                self.step()
            except Exception as e:  # keep churning; the report says what went wrong
                self.world.tally.add(f"churn-error:{type(e).__name__}")

    def step(self) -> None:
        self._retry_deletes()
        if len(self.alive) < self.max_alive and (not self.alive or self.rng.random() < 0.6):
            self._add()
        elif self.alive:
            tracked = self.alive.pop(self.rng.randrange(len(self.alive)))
            self.world.unregister_pod(tracked)
            self._del_pod(tracked.pod)

    def _add(self) -> None:
        self._seq += 1
        runtime = self.world.runtime(self.node)
        pod = runtime.new_pod(POD_NAMESPACE, f"churn-{self.node.name}-{self._seq}")
        try:
            runtime.add(pod)
        except CniError as e:
            self.world.tally.add("churn-add-failed")
            self.world.add_failures.add(f"{e.code}:{str(e.error.get('msg', ''))[:60]}")
            self.to_delete.append(pod)
            return
        except Exception:
            self.world.tally.add("churn-add-failed")
            self.world.add_failures.add("exec")
            self.to_delete.append(pod)
            return
        self.world.tally.add("churn-add")
        tracked = TrackedPod(self.node.name, pod, pod.ip)
        try:
            runtime.check(pod)
            self.world.tally.add("churn-check")
        except CniError as e:  # e.g. the agent was just killed: CHECK cannot be served
            self.world.tally.add("churn-check-failed")
            self.world.add_failures.add(f"CHECK {e.code}:{str(e.error.get('msg', ''))[:60]}")
        self.world.register_pod(tracked)
        self.alive.append(tracked)

    def _del_pod(self, pod: Pod) -> bool:
        runtime = self.world.runtime(self.node)
        try:
            runtime.delete(pod)
        except Exception:
            self.world.tally.add("churn-del-failed")
            if pod not in self.to_delete:
                self.to_delete.append(pod)
            return False
        self.world.tally.add("churn-del")
        runtime.remove_netns(pod)
        if pod in self.to_delete:
            self.to_delete.remove(pod)
        return True

    def _retry_deletes(self) -> None:
        for pod in list(self.to_delete):
            self._del_pod(pod)

    def drain(self, timeout: float) -> None:
        """After the faults: every owed DEL succeeds (a runtime retries until it does)."""
        deadline = time.monotonic() + timeout
        while self.to_delete and time.monotonic() < deadline:
            self._retry_deletes()
            if self.to_delete:
                time.sleep(0.5)
        if self.to_delete:
            raise TimeoutError(f"{len(self.to_delete)} DELs on {self.node.name} never succeeded")


class ChurnHost(Protocol):
    """What the churn needs of the world it runs in."""

    stack: EmbeddedStack
    standins: dict[str, StandInAgent]
    tally: Tally
    add_failures: Tally

    def runtime(self, node: SimNode) -> PodRuntime: ...

    def register_pod(self, tracked: TrackedPod) -> None: ...

    def unregister_pod(self, tracked: TrackedPod) -> None: ...
