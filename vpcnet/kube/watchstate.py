"""The watcher's side of Redis and the task queue (an adapter: it imports redis).

- :class:`TaskSender` enqueues the control-plane tasks by name, each on its queue
  (``vpcnet.tasknames``), with a minimal Celery client, so the watcher does not import
  the workers' code (or boto3).
- :class:`WatcherState` reads vpcnet's Redis view of nodes and takes the enqueue dedup
  claims (``vpcnet.state.claims``); :class:`AgentReadyListener` follows the ``agent-ready`` channel.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import redis
import structlog
from celery import Celery

from vpcnet.domain import EniRecord
from vpcnet.errors import StateError, TemporaryError
from vpcnet.kube.nodeplan import ControlView, plan_status_summary
from vpcnet.observability.celery_hooks import ENQUEUED_HEADER
from vpcnet.settings import Settings
from vpcnet.state.broker import celery_broker_config
from vpcnet.state.claims import Claim, DedupClaims
from vpcnet.state.connection import connect
from vpcnet.state.keys import ClusterKeys
from vpcnet.state.records import AgentRecord, NodeRecord
from vpcnet.tasknames import EC2_QUEUE, QUEUE_OF, QUEUES

log = structlog.get_logger("vpcnet.watcher")


class TaskSender:
    """Sends tasks by name, each to its queue (node_ready to the scan queue: in a join
    storm it does not wait behind every other node's provisioning)."""

    def __init__(self, settings: Settings) -> None:
        broker = celery_broker_config(settings.broker, settings.broker_visibility_timeout_seconds)
        self._app = Celery("vpcnet-watcher", broker=broker["broker_url"], set_as_current=False)
        self._app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            broker_connection_retry_on_startup=True,
            broker_transport_options=broker["broker_transport_options"],
            broker_use_ssl=broker.get("broker_use_ssl"),
            task_send_sent_event=True,  # Flower shows a task from the moment it is sent
        )

    def warm(self) -> None:
        """Connect to the broker and declare every queue and the task-sent events'
        exchange now, so the first send does not pay for it: that send is a new
        cluster's first node's provisioning, and Celery builds its sender, its event
        dispatcher and the connection on first use (~0.1 s here, most of a prefix-mode
        join's overhead). A broker that cannot be reached is left for the first send
        (which connects, retries and reports as it always did)."""
        amqp = self._app.amqp
        try:
            amqp.send_task_message  # noqa: B018 - builds Celery's sender (a cached property)
            with self._app.producer_or_acquire() as producer:
                producer.connection.ensure_connection(max_retries=0)
                for name in QUEUES:
                    producer.maybe_declare(amqp.queues[name])
                events = self._app.events.Dispatcher(producer.connection, enabled=False)
                producer.maybe_declare(events.exchange)
        except Exception as e:  # kombu raises OperationalError and friends, not one base
            log.warning("task_sender.not_warmed", error=str(e))

    def send(self, task: str, args: Sequence[Any]) -> str:
        """Enqueue ``task(*args)``; returns the task id."""
        try:
            result = self._app.send_task(
                task, args=list(args), queue=QUEUE_OF.get(task, EC2_QUEUE),
                # Workers measure provisioning time from here (kept across retries).
                headers={ENQUEUED_HEADER: f"{time.time():.3f}"},
            )
        except Exception as e:  # kombu raises OperationalError and friends, not one base
            raise StateError(f"cannot enqueue {task}: {e}") from e
        return str(result.id)

    def close(self) -> None:
        self._app.close()


class WatcherState:
    def __init__(self, settings: Settings, client: redis.Redis[bytes] | None = None) -> None:
        self.keys = ClusterKeys(settings.cluster_name)
        self._r = client or connect(settings.redis_url, socket_timeout=5)
        self._claims = DedupClaims(self._r, self.keys, settings.watcher_dedup_seconds)

    def claim(self, node: str, action: str, value: str) -> Claim:
        """The dedup claim for enqueuing ``action`` with ``value`` (``vpcnet.state.claims``)."""
        return self._claims.claim(node, action, value)

    def demand(self, node: str) -> tuple[int, str]:
        """(ADDs waiting on the node for its pool to grow, when that was reported)."""
        try:
            waiting, at = self._r.hmget(self.keys.node(node).demand, "waiting", "at")
        except redis.RedisError as e:
            raise StateError(f"demand of {node}: {e}") from e
        try:
            return max(int(_s(waiting) or 0), 0), _s(at)
        except ValueError:
            return 0, ""

    def drop_claim(self, node: str, action: str) -> None:
        self._claims.drop(node, action)

    def views(self, nodes: Iterable[str]) -> dict[str, ControlView]:
        """The Redis view of each node, read in one round trip."""
        names = list(nodes)
        if not names:
            return {}
        pipe = self._r.pipeline(transaction=False)
        for name in names:
            nk = self.keys.node(name)
            pipe.hgetall(nk.node)
            pipe.hgetall(nk.agent)
        try:
            raw = pipe.execute()
        except redis.RedisError as e:
            raise StateError(f"reading node views: {e}") from e
        out: dict[str, ControlView] = {}
        for i, name in enumerate(names):
            record, ready = NodeRecord.from_redis(raw[2 * i]), raw[2 * i + 1]
            out[name] = ControlView(
                instance_id=record.instance_id,
                phase=record.phase,
                agent_ready=AgentRecord.from_redis(ready).ready,
            )
        return out

    def summaries(self, nodes: Iterable[str]) -> dict[str, str | None]:
        """Each node's ``vpcnet.io/status`` summary (None: no vpcnet state), one round trip."""
        names = list(nodes)
        if not names:
            return {}
        pipe = self._r.pipeline(transaction=False)
        for name in names:
            nk = self.keys.node(name)
            pipe.hgetall(nk.node)
            pipe.hvals(nk.enis)
            pipe.hgetall(nk.agent)
        try:
            raw = pipe.execute()
        except redis.RedisError as e:
            raise StateError(f"reading node summaries: {e}") from e
        out: dict[str, str | None] = {}
        for i, name in enumerate(names):
            fields, enis, agent = raw[3 * i], raw[3 * i + 1], raw[3 * i + 2]
            try:
                records = [EniRecord.from_json(v) for v in enis]
            except (ValueError, KeyError, TypeError) as e:
                log.warning("state.bad_eni_record", node=name, error=str(e))
                records = []
            out[name] = plan_status_summary(_str_map(fields), records, AgentRecord.from_redis(agent))
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
    """Follows the cluster ``agent-ready`` channel and every node's ``changed`` channel.

    ``on_ready(node)`` runs for each agent-ready message, ``on_changed(node)`` when the
    control plane rewrote a node's state; ``on_reconnect()`` after every
    (re)subscription, because messages published while we were disconnected are lost and
    the caller must catch up from the hashes.
    """

    def __init__(
        self,
        settings: Settings,
        on_ready: Callable[[str], None],
        on_reconnect: Callable[[], None],
        on_changed: Callable[[str], None] | None = None,
    ) -> None:
        keys = ClusterKeys(settings.cluster_name)
        self._url = settings.redis_url
        self._channel = keys.agent_ready_channel
        # vpcnet:{<cluster>/<node>}:changed for every node; braces are literal in patterns.
        sample = keys.node("NODE").changed_channel
        self._changed_prefix, self._changed_suffix = sample.split("NODE")
        self._pattern = f"{self._changed_prefix}*{self._changed_suffix}"
        self._on_ready = on_ready
        self._on_reconnect = on_reconnect
        self._on_changed = on_changed
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
            client = connect(self._url, socket_timeout=5, health_check_interval=10)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._channel)
                if self._on_changed is not None:
                    pubsub.psubscribe(self._pattern)
                self._on_reconnect()
                delay = 0.2
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=1.0)
                    if not msg:
                        continue
                    if msg.get("type") == "message":
                        self._on_ready(_s(msg["data"]))
                    elif msg.get("type") == "pmessage" and self._on_changed is not None:
                        channel = _s(msg["channel"])
                        node = channel[len(self._changed_prefix) : -len(self._changed_suffix)]
                        if node:
                            self._on_changed(node)
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


def _str_map(raw: Mapping[bytes, bytes] | Mapping[str, str]) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in raw.items()}
