"""Typed settings, read once from the environment (``VPCNET_*``) and passed explicitly.

Nothing else in vpcnet reads ``os.environ``; components receive a settings object.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from vpcnet.domain import IpFamily, Mode
from vpcnet.errors import ConfigError
from vpcnet.state.redis_url import validate_redis_url

T = TypeVar("T")


def _conv(name: str, raw: str, typ: Any) -> Any:
    try:
        if typ in (bool, "bool"):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if typ in (int, "int"):
            return int(raw)
        if typ in (float, "float"):
            return float(raw)
        if typ in ("Mode",):
            return Mode(raw)
        if typ in ("IpFamily",):
            return IpFamily(raw)
        if typ in ("tuple[str, ...]",):
            return tuple(x.strip() for x in raw.split(",") if x.strip())
        if typ in ("str | None",):
            return raw or None
        return raw
    except ValueError as e:
        raise ConfigError(f"invalid value for {name}: {raw!r}") from e


def _from_env(cls: type[T], prefix: str, env: Mapping[str, str] | None, **overrides: Any) -> T:
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        key = prefix + f.name.upper()
        if key in env:
            values[f.name] = _conv(key, env[key], f.type)
    values.update(overrides)
    obj = cls(**values)
    validate = getattr(obj, "validate", None)
    if validate:
        validate()
    return obj


@dataclass(frozen=True, slots=True)
class Settings:
    """Control-plane settings (watcher, workers, beat, CLI)."""

    cluster_name: str = "vpcnet"
    # redis://, rediss://, unix:// or redis+sentinel://[user:pass@]h1:26379,h2:26379/<service>/<db>
    # (vpcnet.state.redis_url); with Sentinel, the Celery broker and result backend use
    # kombu's sentinel transport, derived from the same URL (workers.celery_config).
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str | None = None  # defaults to redis_url; the same forms
    aws_region: str = "us-east-1"
    ec2_endpoint_url: str | None = None  # the emulator's URL; None = real AWS
    kubeconfig: str | None = None  # None = in-cluster config
    mode: Mode = Mode.FULL
    # Which families pods get (per node: the vpcnet.io/ip-family annotation or a profile).
    ip_family: IpFamily = IpFamily.IPV4
    warm_ip_target: int = 0
    minimum_ip_target: int = 0
    warm_eni_target: int = 1
    warm_prefix_target: int = 1
    # Warm mode: ENIs (the primary included) kept attached ahead of demand, with no
    # secondary IP beyond what the targets above want, so that a burst grows the pool by
    # AssignPrivateIpAddresses alone (~0.15 s, all ENIs in parallel) instead of waiting
    # for a new ENI's CreateNetworkInterface + AttachNetworkInterface (~2-3 s). -1
    # (default): every ENI the instance type allows, i.e. enough for its max pods; N:
    # at most N; 0: only the ENIs the IP targets need (the AWS VPC CNI's warm mode).
    # The cost: each ENI held takes one address of the subnet (its primary IP) and one
    # ENI of the account's regional quota (5,000 by default). They never delay a join
    # (they come once the node is READY, from the pass node_ready sends, at background
    # priority; the warm-pool scan's otherwise) and never break a node: one that fails (subnet or quota short) is
    # logged with a Warning Event, the node keeps its IPs, and none is tried again for
    # 5 minutes (30 s after a temporary failure). IPs, the subnet's scarce resource,
    # stay on the warm targets; a trim gives back IPs, never these ENIs.
    warm_attached_enis: int = -1
    ip_cooldown_seconds: float = 30.0
    eni_gc_grace_seconds: float = 600.0
    reconcile_interval_seconds: float = 60.0
    gc_interval_seconds: float = 300.0
    warm_pool_interval_seconds: float = 10.0
    # Share of AWS's token buckets that vpcnet allows itself, across all workers,
    # leaving headroom for other EC2 clients in the account.
    rate_limit_share: float = 0.8
    # Off only where EC2 itself does not throttle (an emulator measuring resource use):
    # on AWS, without the shared limiter a storm turns into RequestLimitExceeded retries.
    ec2_rate_limit: bool = True
    # The limiter's buckets refill this many times faster than AWS's: only for an EC2
    # emulator whose clock runs faster (``vpcnet bench storm --time-scale``).
    rate_limit_time_scale: float = 1.0
    task_time_limit_seconds: int = 300
    broker_visibility_timeout_seconds: int = 3600
    lease_duration_seconds: float = 15.0
    # Redis replicas that must hold a node lock's extension before an EC2 mutation is
    # sent under it (Redis WAIT), so a failover cannot hand the lock to a second pass
    # while a call is in flight. 0 for a Redis without replicas.
    lock_replicas: int = 0
    event_namespace: str = "default"
    # Leader election of the watcher replicas (coordination.k8s.io/v1 Lease).
    lease_name: str = "vpcnet-watcher"
    lease_namespace: str = "default"
    # A burst of node updates enqueues at most one task per node and action per window
    # (plus one trailing task if what matters changed during the window).
    watcher_dedup_seconds: float = 30.0
    # Celery workers: EC2 work is I/O-bound (waiting on EC2 and on the shared rate limiter),
    # so one worker process runs this many threads.
    worker_concurrency: int = 64
    # Custom networking: a JSON file of named ENI profiles (subnet or subnet tags,
    # security groups, mode), chosen per node by annotation or label selector.
    profiles_path: str | None = None
    # Celery workers serve Prometheus metrics on this port (0: off).
    metrics_port: int = 0

    @property
    def broker(self) -> str:
        return self.broker_url or self.redis_url

    def validate(self) -> None:
        if not self.cluster_name or "/" in self.cluster_name or "{" in self.cluster_name:
            raise ConfigError(f"invalid cluster name {self.cluster_name!r}")
        validate_redis_url(self.redis_url, "VPCNET_REDIS_URL")
        if self.broker_url is not None:
            validate_redis_url(self.broker_url, "VPCNET_BROKER_URL")
        if not 0 < self.rate_limit_share <= 1:
            raise ConfigError("rate_limit_share must be in (0, 1]")
        if not self.rate_limit_time_scale > 0:
            raise ConfigError("rate_limit_time_scale must be positive")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port {self.metrics_port} outside 0..65535")
        if self.task_time_limit_seconds >= self.broker_visibility_timeout_seconds:
            raise ConfigError("task time limit must stay below the broker visibility timeout")
        for name in ("warm_ip_target", "minimum_ip_target", "warm_eni_target", "warm_prefix_target"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        if self.warm_attached_enis < -1:
            raise ConfigError("warm_attached_enis must be -1 (every ENI), 0 or a count")
        if self.lock_replicas < 0:
            raise ConfigError("lock_replicas must not be negative")
        for name in ("lease_duration_seconds", "watcher_dedup_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        return _from_env(cls, "VPCNET_", env, **overrides)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """Node agent settings (the DaemonSet). No AWS credentials, ever."""

    node_name: str = ""
    cluster_name: str = "vpcnet"
    redis_url: str = "redis://127.0.0.1:6379/0"
    imds_url: str = "http://169.254.169.254"
    socket_path: str = "/run/vpcnet/agent.sock"
    checkpoint_path: str = "/var/lib/vpcnet/checkpoint.json"
    cni_conf_dir: str = "/etc/cni/net.d"
    cni_bin_dir: str = "/opt/cni/bin"
    cni_conf_name: str = "10-vpcnet.conflist"
    host_netns: str | None = None  # simulation: the node is this named netns
    mtu: int = 9001
    snat: bool = True
    snat_exclusions: tuple[str, ...] = ()  # CIDRs never SNAT'd (the VPC CIDR is always)
    vpc_cidrs: tuple[str, ...] = ()
    ip_cooldown_seconds: float = 30.0
    resync_seconds: float = 30.0
    veth_prefix: str = "vpc"
    log_file: str = "/var/log/vpcnet/cni.log"
    chained_plugins: tuple[str, ...] = ()  # e.g. ("portmap",) appended to the conflist
    install_plugin: bool = True  # the agent (re)installs vpcnet-cni into cni_bin_dir
    cni_runtime_dir: str = "/opt/vpcnet"  # the plugin's self-contained runtime
    imds_redirect_port: int = 0  # >0: pods' 169.254.169.254:80 -> <primary ip>:port (kube2iam)
    status_file: str = ""  # readiness probe file; "" = agent-status.json next to the socket
    metrics_port: int = 0  # Prometheus /metrics on all addresses (0: off)
    # The node's own Redis login (invariant 8): the agent trades its projected
    # ServiceAccount token for it at this issuer ("" = the login in redis_url, if any).
    credentials_url: str = ""
    credentials_token_path: str = "/var/run/secrets/vpcnet/token"
    credentials_ca_file: str = ""  # verifies an https issuer ("" = system CAs)

    def validate(self) -> None:
        if not self.node_name:
            raise ConfigError("node_name is required (VPCNET_AGENT_NODE_NAME)")
        validate_redis_url(self.redis_url, "VPCNET_AGENT_REDIS_URL")
        if not 576 <= self.mtu <= 9001:
            raise ConfigError(f"mtu {self.mtu} outside 576..9001")
        if not 0 <= self.imds_redirect_port <= 65535:
            raise ConfigError(f"imds_redirect_port {self.imds_redirect_port} outside 0..65535")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port {self.metrics_port} outside 0..65535")
        if self.credentials_url:
            if not self.credentials_url.startswith(("http://", "https://")):
                raise ConfigError(f"credentials_url must be http(s): {self.credentials_url!r}")
            if "@" in self.redis_url.split("//", 1)[-1].split("/", 1)[0]:
                raise ConfigError("redis_url must not carry a login when credentials_url is set")
        if len(self.veth_prefix) > 4 or not self.veth_prefix.isalnum():
            raise ConfigError("veth_prefix must be 1-4 alphanumerics")
        for c in self.snat_exclusions + self.vpc_cidrs:
            try:
                ipaddress.IPv4Network(c)
            except ValueError as e:
                raise ConfigError(f"invalid CIDR {c!r}") from e

    @property
    def agent_socket(self) -> str:
        """The socket as the conflist's ``agentSocket`` and the launcher name it (absolute):
        the agent's fast path serves only configs that name exactly this one."""
        return os.path.abspath(self.socket_path)

    @property
    def status_path(self) -> str:
        """Where the agent writes its status for ``vpcnet agent --check-ready``."""
        return self.status_file or os.path.join(
            os.path.dirname(self.socket_path), "agent-status.json"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> AgentSettings:
        return _from_env(cls, "VPCNET_AGENT_", env, **overrides)


__all__ = ["AgentSettings", "Settings", "field"]
