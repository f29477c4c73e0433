"""The watcher's side of Redis and the task queue (an adapter: it imports redis).

- :class:`TaskSender` enqueues the control-plane tasks by name on the ``ec2`` queue with a
  minimal Celery client, so the watcher does not import the workers' code (or boto3).
- :class:`WatcherState` reads vpcnet's Redis view of nodes and holds the enqueue dedup
  keys; :class:`AgentReadyListener` follows the ``agent-ready`` channel.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis
import structlog
from celery import Celery

from vpcnet.domain import NodePhase
from vpcnet.errors import StateError, TemporaryError
from vpcnet.kube.nodeplan import ControlView
from vpcnet.settings import Settings
from vpcnet.state.keys import ClusterKeys

log = structlog.get_logger("vpcnet.watcher")

PROVISION_NODE = "vpcnet.provision_node"
RELEASE_NODE = "vpcnet.release_node"
NODE_READY = "vpcnet.node_ready"
EC2_QUEUE = "ec2"

# Set the key to ARGV[1] for ARGV[2] ms unless it already holds ARGV[1].
# Returns {1, 0} when claimed, {0, remaining ms} when an equal claim is still live.
_CLAIM = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  return {0, redis.call('PTTL', KEYS[1])}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, 0}
"""


class TaskSender:
    """Sends tasks by name; the workers' app routes and runs them."""

    def __init__(self, settings: Settings, *, queue: str = EC2_QUEUE) -> None:
        self._queue = queue
        self._app = Celery("vpcnet-watcher", broker=settings.broker, set_as_current=False)
        self._app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            broker_connection_retry_on_startup=True,
            broker_transport_options={
                "visibility_timeout": settings.broker_visibility_timeout_seconds
            },
        )

    def send(self, task: str, args: Sequence[Any]) -> str:
        """Enqueue ``task(*args)``; returns the task id."""
        try:
            result = self._app.send_task(task, args=list(args), queue=self._queue)
        except Exception as e:  # kombu raises OperationalError and friends, not one base
            raise StateError(f"cannot enqueue {task}: {e}") from e
        return str(result.id)

    def close(self) -> None:
        self._app.close()


@dataclass(frozen=True, slots=True)
class Claim:
    won: bool
    remaining: float  # seconds the equal claim still holds (0 when won)


class WatcherState:
    def __init__(self, settings: Settings, client: redis.Redis[bytes] | None = None) -> None:
        self.keys = ClusterKeys(settings.cluster_name)
        self._r = client or redis.Redis.from_url(settings.redis_url, socket_timeout=5)
        self._claim = self._r.register_script(_CLAIM)
        self.window = settings.watcher_dedup_seconds

    def claim(self, node: str, action: str, value: str) -> Claim:
        """Take the dedup claim for enqueuing ``action`` with ``value`` on ``node``.

        Won when no equal claim is live; a different value (a new instance id) wins at
        once. The claim lapses after the dedup window so a later change enqueues again.
        """
        key = self.keys.dedup_action(node, action)
        try:
            won, pttl = cast(
                list[int], self._claim(keys=[key], args=[value, int(self.window * 1000)])
            )
        except redis.RedisError as e:
            raise StateError(f"dedup claim for {node}: {e}") from e
        return Claim(won=bool(won), remaining=max(0.0, int(pttl) / 1000))

    def drop_claim(self, node: str, action: str) -> None:
        """Let the next enqueue of ``action`` through (e.g. after the send failed)."""
        try:
            self._r.delete(self.keys.dedup_action(node, action))
        except redis.RedisError as e:
            raise StateError(f"dedup drop for {node}: {e}") from e

    def views(self, nodes: Iterable[str]) -> dict[str, ControlView]:
        """The Redis view of each node, read in one round trip."""
        names = list(nodes)
        if not names:
            return {}
        pipe = self._r.pipeline(transaction=False)
        for name in names:
            nk = self.keys.node(name)
            pipe.hmget(nk.node, ["instance_id", "phase"])
            pipe.hget(nk.agent, "ready")
        try:
            raw = pipe.execute()
        except redis.RedisError as e:
            raise StateError(f"reading node views: {e}") from e
        out: dict[str, ControlView] = {}
        for i, name in enumerate(names):
            (iid, phase), ready = raw[2 * i], raw[2 * i + 1]
            out[name] = ControlView(
                instance_id=_s(iid),
                phase=_phase(_s(phase)),
                agent_ready=_s(ready) == "1",
            )
        return out

    def view(self, node: str) -> ControlView:
        return self.views([node])[node]

    def known_nodes(self) -> set[str]:
        """Nodes vpcnet holds state for (the cluster ``nodes`` set)."""
        try:
            return {_s(n) for n in self._r.smembers(self.keys.nodes)}
        except redis.RedisError as e:
            raise StateError(f"reading the node set: {e}") from e

    def close(self) -> None:
        self._r.close()


class AgentReadyListener:
    """Follows the cluster ``agent-ready`` channel in a thread.

    ``on_ready(node)`` runs for each message; ``on_reconnect()`` after every
    (re)subscription, because messages published while we were disconnected are lost and
    the caller must catch up from the agents' hashes.
    """

    def __init__(
        self,
        settings: Settings,
        on_ready: Callable[[str], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        self._url = settings.redis_url
        self._channel = ClusterKeys(settings.cluster_name).agent_ready_channel
        self._on_ready = on_ready
        self._on_reconnect = on_reconnect
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="agent-ready", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            client = redis.Redis.from_url(self._url, socket_timeout=5, health_check_interval=10)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._channel)
                self._on_reconnect()
                delay = 0.2
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=1.0)
                    if msg and msg.get("type") == "message":
                        self._on_ready(_s(msg["data"]))
            except (redis.RedisError, TemporaryError) as e:
                log.warning("agent_ready.disconnected", error=str(e), retry_in=round(delay, 2))
                self._stop.wait(delay)
                delay = min(10.0, delay * 2) * random.uniform(0.8, 1.2)
            finally:
                try:
                    pubsub.close()
                    client.close()
                except redis.RedisError:
                    pass


def _s(raw: object) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        return raw.decode()
    return str(raw)


def _phase(raw: str) -> NodePhase | None:
    try:
        return NodePhase(raw) if raw else None
    except ValueError:
        return None
