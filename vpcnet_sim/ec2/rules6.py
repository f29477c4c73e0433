"""AWS's IPv6 ENI rules (AssignIpv6Addresses, UnassignIpv6Addresses, the IPv6 part of
CreateNetworkInterface and AttachNetworkInterface), where moto accepts what EC2 rejects.

moto hands out random IPv6 addresses (possibly twice, possibly inside a delegated /80),
ignores ``Ipv6PrefixCount``/``Ipv6Prefixes`` altogether and never checks the per-ENI
limit. Here: a subnet without an IPv6 CIDR refuses IPv6; addresses + /80 prefixes stay
within the instance type's ``Ipv6AddressesPerInterface``; prefixes only on Nitro; every
/80 unique in its subnet while held. As in ``rules``, everything is checked before any
state changes, so a refused call leaves nothing half-done.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from vpcnet.domain import InstanceLimits
from vpcnet.errors import UnknownInstanceTypeError
from vpcnet_sim.ec2 import errors
from vpcnet_sim.ec2.ipam6 import Ipv6SubnetPool, norm_prefix6, not_in_prefixes
from vpcnet_sim.ec2.limits import MAX_IPV6_PER_ENI, instance_limits
from vpcnet_sim.ec2.models import SimEc2Backend, SimInstance, SimNetworkInterface


@dataclass(frozen=True, slots=True)
class Ipv6Request:
    """IPv6 to put on an ENI: explicit addresses or a count, /80 prefixes or a count."""

    ips: tuple[str, ...] = ()
    ip_count: int = 0
    prefixes: tuple[str, ...] = ()
    prefix_count: int = 0

    @property
    def slots(self) -> int:
        return len(self.ips) + self.ip_count + len(self.prefixes) + self.prefix_count

    @property
    def wants_prefixes(self) -> bool:
        return bool(self.prefixes or self.prefix_count)

    def validate(self) -> None:
        if self.ips and self.ip_count:
            raise errors.combination(
                "You may specify Ipv6AddressCount or specific IPv6 addresses, but not both."
            )
        if self.prefixes and self.prefix_count:
            raise errors.combination("You may specify Ipv6PrefixCount or Ipv6Prefixes, but not both.")
        if self.ip_count < 0 or self.prefix_count < 0:
            raise errors.invalid_value("IPv6 address and prefix counts must be positive.")
        if (self.ips or self.ip_count) and self.wants_prefixes:
            raise errors.combination(
                "You may not assign IPv6 addresses and IPv6 prefixes in one request."
            )


@dataclass(slots=True)
class Taken6:
    ips: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)


def _instance_of(eni: SimNetworkInterface) -> SimInstance | None:
    return eni.instance if isinstance(eni.instance, SimInstance) else None


def _limits(instance: SimInstance) -> InstanceLimits:
    try:
        return instance_limits(instance.instance_type)
    except UnknownInstanceTypeError as e:
        raise errors.invalid_value(f"Unknown instance type {instance.instance_type}") from e


def _ipv6_limit(eni: SimNetworkInterface) -> int:
    instance = _instance_of(eni)
    if instance is None:
        return MAX_IPV6_PER_ENI  # unattached: checked again on attach
    return _limits(instance).ipv6_slots


def _no_prefix_support(instance: SimInstance) -> errors.SimApiError:
    return errors.invalid_value(
        f"Prefix delegation is not supported for instance type {instance.instance_type}; "
        "only Nitro-based instance types support it."
    )


def _pool6(eni: SimNetworkInterface) -> Ipv6SubnetPool:
    pool = eni.pool6
    if pool is None:
        raise errors.no_ipv6_cidr(eni.subnet.id)
    return pool


def check_room(eni: SimNetworkInterface, req: Ipv6Request) -> Ipv6SubnetPool:
    """Everything that refuses a request before anything is taken."""
    pool = _pool6(eni)
    instance = _instance_of(eni)
    if req.wants_prefixes and instance is not None:
        if not _limits(instance).supports_prefixes:
            raise _no_prefix_support(instance)
    new_explicit = [ip for ip in req.ips if ip not in eni.ipv6_addresses]
    added = len(new_explicit) + req.ip_count + len(req.prefixes) + req.prefix_count
    if eni.ipv6_slots + added > _ipv6_limit(eni):
        raise errors.ipv6_limit()
    return pool


def take(eni: SimNetworkInterface, pool: Ipv6SubnetPool, req: Ipv6Request) -> Taken6:
    """Claim the request from the subnet's pool and put it on the ENI (all or nothing)."""
    taken = Taken6()
    try:
        for ip in req.ips:
            if ip not in eni.ipv6_addresses:
                taken.ips.append(pool.claim_ip(ip))
        if req.ip_count:
            taken.ips.extend(pool.allocate_ips(req.ip_count))
        for prefix in req.prefixes:
            taken.prefixes.append(pool.claim_prefix(prefix))
        if req.prefix_count:
            taken.prefixes.extend(pool.allocate_prefixes(req.prefix_count))
    except errors.SimApiError:
        pool.release_ips(taken.ips)
        pool.release_prefixes(taken.prefixes)
        raise
    eni.ipv6_addresses.extend(taken.ips)
    eni.add_ipv6_prefixes(taken.prefixes)
    return taken


def assign(backend: SimEc2Backend, eni_id: str, req: Ipv6Request) -> Taken6:
    """AssignIpv6Addresses: the new addresses and /80 prefixes."""
    req.validate()
    if req.slots == 0:
        raise errors.missing(
            "Either Ipv6AddressCount, Ipv6Addresses, Ipv6PrefixCount or Ipv6Prefixes must be "
            "specified."
        )
    eni = backend.get_sim_eni(eni_id)
    pool = check_room(eni, req)
    return take(eni, pool, req)


def unassign(backend: SimEc2Backend, eni_id: str, ips: list[str], prefixes: list[str]) -> Taken6:
    """UnassignIpv6Addresses: frees the addresses and /80s (they may be handed out again)."""
    if not ips and not prefixes:
        raise errors.missing("Either Ipv6Addresses or Ipv6Prefixes must be specified.")
    eni = backend.get_sim_eni(eni_id)
    held = set(eni.ipv6_addresses)
    norm_ips = [_norm_ip6(ip) for ip in ips]
    if any(ip not in held for ip in norm_ips):
        raise errors.invalid_value(
            f"Some of the specified IPv6 addresses are not assigned to interface {eni_id}"
        )
    held_prefixes = set(eni.ipv6_prefix_list)
    norm = [norm_prefix6(p) for p in prefixes]
    if any(p not in held_prefixes for p in norm):
        raise not_in_prefixes(eni_id)
    eni.remove_ipv6_addresses(norm_ips)
    eni.remove_ipv6_prefixes(norm)
    pool = eni.pool6
    if pool is not None:
        pool.release_ips(norm_ips)
        pool.release_prefixes(norm)
    return Taken6(norm_ips, norm)


def _norm_ip6(ip: str) -> str:
    try:
        return str(ipaddress.IPv6Address(ip))
    except ValueError as e:
        raise errors.invalid_value(f"Invalid IPv6 address: {ip}") from e


def check_attach(eni: SimNetworkInterface, instance: SimInstance) -> None:
    """What the target instance type must allow of an ENI's IPv6 (AttachNetworkInterface)."""
    limits = _limits(instance)
    if eni.ipv6_slots > limits.ipv6_slots:
        raise errors.ipv6_limit()
    if eni.ipv6_prefixes and not limits.supports_prefixes:
        raise _no_prefix_support(instance)
