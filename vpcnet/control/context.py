"""A typed bundle of the adapters the control plane uses, built once per process."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from vpcnet.aws.calls import CallRecorder
from vpcnet.aws.ec2 import Ec2, make_client
from vpcnet.aws.ratelimit import RateLimiter
from vpcnet.control.networking import Profile, load_profiles
from vpcnet.domain import NodeRef
from vpcnet.settings import Settings
from vpcnet.state.connection import connect
from vpcnet.state.control import ControlState


class KubePort(Protocol):
    """What the control plane needs of the Kubernetes adapter (``vpcnet.kube.client``)."""

    def get_node(self, name: str) -> NodeRef | None: ...

    def list_nodes(self) -> tuple[list[Any], str]: ...  # (NodeObj list, resourceVersion)

    def ensure_taint(self, node: str, key: str, effect: str, value: str = "") -> bool: ...

    def remove_taint(self, node: str, key: str, effect: str | None = None) -> bool: ...

    def emit_event(self, node_name: str, reason: str, message: str, type: str = ...) -> None: ...


@dataclass
class ControlContext:
    settings: Settings
    state: ControlState
    ec2: Ec2
    kube: KubePort
    recorder: CallRecorder
    profiles: dict[str, Profile] = field(default_factory=dict)
    # Per-node lock: short TTL renewed by a heartbeat, so a killed worker frees it fast.
    lock_ttl_seconds: float = 20.0
    # Zones whose subnets this process read (or reads) ahead of a pass, and that read
    # (vpcnet.control.gather): a pass that meets a read in flight waits for it.
    zones_read: dict[str, Future[None]] = field(default_factory=dict)
    zones_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cluster(self) -> str:
        return self.settings.cluster_name

    @property
    def work_budget_seconds(self) -> float:
        """How long one task may act before handing over to a retry: below the task time
        limit (which a thread pool cannot enforce) and so below the visibility timeout."""
        return self.settings.task_time_limit_seconds * 0.8

    @classmethod
    def from_settings(cls, settings: Settings, *, kube: KubePort | None = None) -> ControlContext:
        client = connect(
            settings.redis_url,
            socket_timeout=10,
            socket_connect_timeout=5,
            health_check_interval=30,
            max_connections=settings.worker_concurrency * 3 + 10,
        )
        recorder = CallRecorder(client, settings.cluster_name)
        limiter = (
            RateLimiter(client, settings.cluster_name, share=settings.rate_limit_share,
                        time_scale=settings.rate_limit_time_scale)
            if settings.ec2_rate_limit
            else None
        )
        ec2 = Ec2(
            make_client(settings.aws_region, settings.ec2_endpoint_url,
                        pool_size=settings.worker_concurrency + 4),
            limiter,
            recorder,
        )
        if kube is None:
            from vpcnet.kube.client import KubeClient  # the adapter; imported lazily

            kube = KubeClient.from_settings(settings, component="vpcnet-worker")
        return cls(
            settings=settings,
            state=ControlState(client, settings.cluster_name, lock_replicas=settings.lock_replicas),
            ec2=ec2,
            kube=kube,
            recorder=recorder,
            profiles=load_profiles(settings.profiles_path),
        )
