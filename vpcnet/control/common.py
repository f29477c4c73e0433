"""Helpers every control-plane operation shares: the node lock, a work deadline,
cached lookups (limits, subnet CIDRs) and how permanent errors are surfaced."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import structlog

from vpcnet.aws.calls import attributed_to
from vpcnet.aws.fence import fenced_by
from vpcnet.control.context import ControlContext
from vpcnet.domain import InstanceLimits, IPv4Net, IPv6Net, NodePhase
from vpcnet.errors import LockHeld, NotFoundError, StateError, TemporaryError, VpcnetError
from vpcnet.limits import resolve_limits
from vpcnet.plan import Targets
from vpcnet.state.lock import Lease

log = structlog.get_logger("vpcnet.control")
T = TypeVar("T")

EVENT_WARNING = "Warning"
EVENT_NORMAL = "Normal"


@contextmanager
def node_lock(ctx: ControlContext, node: str,
              release: Callable[[Lease], None] | None = None) -> Iterator[str]:
    """Hold the node's lock and fence every EC2 mutation inside the block with it.

    A heartbeat renews its short TTL while the work runs, so a killed worker frees the
    node within ``lock_ttl_seconds``. The heartbeat alone cannot keep invariant 9 (a
    renewal can fail, or a failover lose the key, while the pass goes on): the EC2 choke
    point checks the lease before each mutating call and stops the pass at the first
    call after the loss; a loss the heartbeat sees marks the lease so that next call
    fails without even asking Redis. Yields the token the write-back is fenced by.
    ``release`` frees the lock at the end, after the heartbeat stopped (default: the
    lease's own release; a provisioning pass also ends its hand-over there).
    """
    ttl = ctx.lock_ttl_seconds
    lease = ctx.state.lease_lock(node, ttl)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(ttl / 3):
            try:
                lease.extend(ttl)
            except LockHeld:
                log.warning("node lock lost; the pass stops at its next EC2 call", node=node)
                return
            except StateError as e:
                log.warning("lock heartbeat failed", node=node, error=str(e))

    beat = threading.Thread(target=heartbeat, name=f"lock-{node}", daemon=True)
    beat.start()
    try:
        with fenced_by(lease):
            yield lease.token
    finally:
        stop.set()
        beat.join()
        if release is None or lease.lost or lease.lingers:
            lease.release()
        else:
            release(lease)


class Deadline:
    """A task hands over to a retry (it is idempotent) rather than outlive its budget."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def check(self, what: str) -> None:
        if time.monotonic() > self._end:
            raise TemporaryError(f"work budget spent before {what}; continuing in a retry", delay=1.0)

    def remaining(self) -> float:
        return self._end - time.monotonic()


def targets(ctx: ControlContext) -> Targets:
    s = ctx.settings
    return Targets(s.warm_ip_target, s.minimum_ip_target, s.warm_eni_target, s.warm_prefix_target,
                   s.warm_attached_enis)


_FILL_WAIT_SECONDS = 5.0
_local_fill_locks: dict[str, threading.Lock] = {}
_local_fill_guard = threading.Lock()


def _single_flight(ctx: ControlContext, what: str, cached: Callable[[], T | None],
                   fill: Callable[[], T]) -> T:
    """Fill a cluster-wide cache entry once, not once per concurrent task: threads of this
    process queue on a local lock, other processes wait for the one that claimed it."""
    hit = cached()
    if hit is not None:
        return hit
    with _local_fill_guard:
        lock = _local_fill_locks.setdefault(what, threading.Lock())
    with lock:
        hit = cached()
        if hit is not None:
            return hit
        if not ctx.state.claim_fill(what, _FILL_WAIT_SECONDS):
            deadline = time.monotonic() + _FILL_WAIT_SECONDS
            while time.monotonic() < deadline:
                time.sleep(0.05)
                hit = cached()
                if hit is not None:
                    return hit
        # Cluster-wide cache fill: not counted against the node being provisioned.
        with attributed_to(None):
            return fill()


def instance_limits(ctx: ControlContext, instance_type: str) -> InstanceLimits:
    return _single_flight(
        ctx,
        f"limits-{instance_type}",
        lambda: ctx.state.cached_limits(instance_type),
        lambda: resolve_limits(
            instance_type,
            cached=ctx.state.cached_limits,
            describe=ctx.ec2.describe_instance_type,
            store=ctx.state.store_limits,
        ),
    )


def subnet_cidr(ctx: ControlContext, subnet_id: str) -> IPv4Net:
    """A subnet's CIDR never changes: one DescribeSubnets per subnet, ever (Redis cache)."""

    def cached() -> IPv4Net | None:
        hit = ctx.state.cached_subnet(subnet_id)
        return hit[0] if hit else None

    def fill() -> IPv4Net:
        found = ctx.ec2.describe_subnets([subnet_id])
        if not found:
            raise NotFoundError(f"subnet {subnet_id} not found")
        ctx.state.store_subnet(subnet_id, found[0].cidr, found[0].availability_zone,
                               found[0].ipv6_cidr)
        return found[0].cidr

    return _single_flight(ctx, f"subnet-{subnet_id}", cached, fill)


def subnet_ipv6_cidr(ctx: ControlContext, subnet_id: str) -> IPv6Net | None:
    """A subnet's IPv6 /64 (None: it has none), cached with its CIDR; an entry cached
    before IPv6 support lacks it and is filled again, once."""

    def fill() -> tuple[IPv6Net | None]:
        found = ctx.ec2.describe_subnets([subnet_id])
        if not found:
            raise NotFoundError(f"subnet {subnet_id} not found")
        ctx.state.store_subnet(subnet_id, found[0].cidr, found[0].availability_zone,
                               found[0].ipv6_cidr)
        return (found[0].ipv6_cidr,)

    return _single_flight(ctx, f"subnet6-{subnet_id}",
                          lambda: ctx.state.cached_subnet_ipv6(subnet_id), fill)[0]


def surface_error(ctx: ControlContext, node: str, err: VpcnetError, reason: str) -> None:
    """A permanent error: Warning Event on the node, error in Redis, phase ERROR.

    Never raises: surfacing must not turn one failure into a crash loop.
    """
    message = str(err)
    log.warning("node failed permanently", node=node, reason=reason, error=message)
    try:
        ctx.state.set_fields(node, {"phase": NodePhase.ERROR.value, "error": f"{reason}: {message}"})
        ctx.state.record_error(node, reason, message)
    except StateError as e:
        log.error("cannot record node error in Redis", node=node, error=str(e))
    try:
        ctx.kube.emit_event(node, reason, message, EVENT_WARNING)
    except VpcnetError as e:
        log.error("cannot emit node event", node=node, error=str(e))


def refresh_limits(ctx: ControlContext) -> list[str]:
    """Re-read the limits of every cached type from EC2 (types nobody uses drop out by TTL)."""
    types = ctx.state.cached_limit_types()
    with attributed_to(None):
        for t in types:
            limits = ctx.ec2.describe_instance_type(t)
            if limits is not None:
                ctx.state.store_limits(limits)
    return types
