"""AWS's ENI rules, enforced where moto accepts what EC2 rejects.

Each function checks everything first and changes state only when the whole request
can succeed, so a rejected call leaves nothing half-done (as on AWS). All run under the
server's backend lock.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from vpcnet.domain import InstanceLimits
from vpcnet.errors import UnknownInstanceTypeError
from vpcnet_sim.ec2 import errors, rules6
from vpcnet_sim.ec2.limits import MAX_IPV4_PER_ENI, MAX_IPV6_PER_ENI, instance_limits
from vpcnet_sim.ec2.models import SimEc2Backend, SimInstance, SimNetworkInterface


@dataclass(frozen=True, slots=True)
class AddressRequest:
    """Addresses to put on an ENI: explicit ones or counts, IPs and/or /28 prefixes."""

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
                "You may specify secondaryPrivateIpAddressCount or specific secondary "
                "private IP addresses, but not both."
            )
        if self.prefixes and self.prefix_count:
            raise errors.combination("You may specify Ipv4PrefixCount or Ipv4Prefixes, but not both.")
        if self.ip_count < 0 or self.prefix_count < 0:
            raise errors.invalid_value("Address and prefix counts must be positive.")


@dataclass(slots=True)
class _Taken:
    """What a request has claimed so far, to hand back if a later step fails."""

    ips: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)


def limits_of(instance: SimInstance) -> InstanceLimits:
    try:
        return instance_limits(instance.instance_type)
    except UnknownInstanceTypeError as e:
        raise errors.invalid_value(f"Unknown instance type {instance.instance_type}") from e


def _instance_of(eni: SimNetworkInterface) -> SimInstance | None:
    return eni.instance if isinstance(eni.instance, SimInstance) else None


def _ip_limit(eni: SimNetworkInterface) -> int:
    instance = _instance_of(eni)
    return limits_of(instance).ipv4_per_eni if instance else MAX_IPV4_PER_ENI


def _no_prefix_support(instance: SimInstance) -> errors.SimApiError:
    return errors.invalid_value(
        f"Prefix delegation is not supported for instance type {instance.instance_type}; "
        "only Nitro-based instance types support it."
    )


def _take(eni: SimNetworkInterface, req: AddressRequest, backend: SimEc2Backend,
          allow_reassignment: bool = False) -> _Taken:
    """Claim the request's addresses from the ENI's subnet pool (all or nothing)."""
    pool = eni.pool
    taken = _Taken()
    try:
        for ip in req.ips:
            if ip in eni.all_ips:
                continue  # already on this ENI: nothing to do
            if allow_reassignment and pool.holds_ip(ip):
                _unassign_elsewhere(backend, eni, ip)
            pool.claim_ip(ip)
            taken.ips.append(ip)
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
    return taken


def _unassign_elsewhere(backend: SimEc2Backend, target: SimNetworkInterface, ip: str) -> None:
    """AllowReassignment: move a secondary IP off whichever ENI holds it."""
    for other in backend.enis.values():
        if other is target or not isinstance(other, SimNetworkInterface):
            continue
        if ip in other.secondary_ips:
            other.remove_ips([ip])
            other.pool.release_ips([ip])
            return
        if ip == other.private_ip_address:
            raise errors.address_in_use(ip)  # a primary address never moves


def create_eni(
    backend: SimEc2Backend,
    *,
    subnet_id: str,
    primary_ip: str | None,
    req: AddressRequest,
    group_ids: list[str],
    description: str,
    tags: dict[str, str],
    req6: rules6.Ipv6Request | None = None,
) -> SimNetworkInterface:
    req.validate()
    req6 = req6 or rules6.Ipv6Request()
    req6.validate()
    pool = backend.pool(subnet_id)  # InvalidSubnetID.NotFound before anything else
    subnet = backend.get_subnet(subnet_id)
    for gid in group_ids:
        if backend.get_security_group_from_id(gid) is None:
            raise errors.SimApiError(
                "InvalidGroup.NotFound", f"The security group '{gid}' does not exist"
            )
    if 1 + req.slots > MAX_IPV4_PER_ENI:
        raise errors.ip_limit()
    # Everything must fit before anything is claimed: the primary plus the request.
    needed_ips = (0 if primary_ip else 1) + req.ip_count
    if needed_ips + 16 * req.prefix_count > pool.free_count():
        raise errors.insufficient_addresses()
    if req6.slots and backend.pool6(subnet_id) is None:
        raise errors.no_ipv6_cidr(subnet_id)
    if req6.slots > MAX_IPV6_PER_ENI:
        raise errors.ipv6_limit()
    eni = backend.create_network_interface(
        subnet, primary_ip, group_ids=group_ids or None, description=description, tags=tags
    )
    try:
        taken = _take(eni, req, backend)
        eni.add_ips(taken.ips)
        eni.add_prefixes(taken.prefixes)
        if req6.slots:
            rules6.take(eni, rules6.check_room(eni, req6), req6)
    except errors.SimApiError:
        backend.delete_network_interface(eni.id)  # releases whatever it holds by now
        raise
    return eni


def assign(
    backend: SimEc2Backend, eni_id: str, req: AddressRequest, *, allow_reassignment: bool = False
) -> tuple[list[str], list[str]]:
    """AssignPrivateIpAddresses: returns (new IPs, new prefixes)."""
    req.validate()
    if req.slots == 0:
        raise errors.missing(
            "Either SecondaryPrivateIpAddressCount, PrivateIpAddresses, Ipv4PrefixCount or "
            "Ipv4Prefixes must be specified."
        )
    if (req.ips or req.ip_count) and req.wants_prefixes:
        raise errors.combination("You may not assign IP addresses and prefixes in one request.")
    eni = backend.get_sim_eni(eni_id)
    instance = _instance_of(eni)
    if req.wants_prefixes and instance and not limits_of(instance).supports_prefixes:
        raise _no_prefix_support(instance)
    new_explicit = [ip for ip in req.ips if ip not in eni.all_ips]
    added = len(new_explicit) + req.ip_count + len(req.prefixes) + req.prefix_count
    if eni.ipv4_slots + added > _ip_limit(eni):
        raise errors.ip_limit()
    taken = _take(eni, req, backend, allow_reassignment)
    eni.add_ips(taken.ips)
    eni.add_prefixes(taken.prefixes)
    return taken.ips, taken.prefixes


def unassign(backend: SimEc2Backend, eni_id: str, ips: list[str], prefixes: list[str]) -> None:
    if not ips and not prefixes:
        raise errors.missing("Either PrivateIpAddresses or Ipv4Prefixes must be specified.")
    eni = backend.get_sim_eni(eni_id)
    if eni.private_ip_address in ips:
        raise errors.invalid_value(
            f"The primary IP address of interface {eni_id} cannot be unassigned."
        )
    held = set(eni.secondary_ips)
    if any(ip not in held for ip in ips):
        raise errors.invalid_value(
            f"Some of the specified addresses are not assigned to interface {eni_id}"
        )
    held_prefixes = set(eni.prefixes)
    norm = [_norm_prefix(p) for p in prefixes]
    if any(p not in held_prefixes for p in norm):
        raise errors.invalid_value(
            f"Some of the specified prefixes are not assigned to interface {eni_id}"
        )
    eni.remove_ips(ips)
    eni.remove_prefixes(norm)
    eni.pool.release_ips(ips)
    eni.pool.release_prefixes(norm)


def _norm_prefix(prefix: str) -> str:
    try:
        return str(ipaddress.IPv4Network(prefix, strict=True))
    except ValueError as e:
        raise errors.invalid_value(f"Invalid IPv4 prefix: {prefix}") from e


def attach(backend: SimEc2Backend, eni_id: str, instance_id: str, device_index: int) -> str:
    eni = backend.get_sim_eni(eni_id)
    instance = backend.get_sim_instance(instance_id)
    if instance.state not in ("running", "stopped", "pending"):
        raise errors.SimApiError(
            "IncorrectInstanceState",
            f"The instance '{instance_id}' is not in a valid state for this operation.",
        )
    if eni.attachment_id:
        raise errors.eni_in_use(eni_id)
    if eni.subnet.availability_zone != instance.placement.zone:
        raise errors.combination(
            f"You may not attach a network interface to an instance if they are not in the "
            f"same availability zone ({eni.subnet.availability_zone} != {instance.placement.zone})"
        )
    if device_index < 0:
        raise errors.invalid_value(f"Invalid value '{device_index}' for deviceIndex")
    if device_index in instance.nics:
        raise errors.invalid_value(
            f"Instance '{instance_id}' already has an interface attached at device index "
            f"'{device_index}'."
        )
    limits = limits_of(instance)
    if len(instance.nics) + 1 > limits.max_enis:
        raise errors.SimApiError(
            "AttachmentLimitExceeded",
            f"Interface count {len(instance.nics) + 1} exceeds the limit for "
            f"{instance.instance_type}",
        )
    if eni.ipv4_slots > limits.ipv4_per_eni:
        raise errors.ip_limit()
    if eni.ipv4_prefixes and not limits.supports_prefixes:
        raise _no_prefix_support(instance)
    rules6.check_attach(eni, instance)
    return backend.attach(eni, instance, device_index)


def find_by_attachment(backend: SimEc2Backend, attachment_id: str) -> SimNetworkInterface:
    for eni in backend.enis.values():
        if isinstance(eni, SimNetworkInterface) and eni.attachment_id == attachment_id:
            return eni
    raise errors.not_found_attachment(attachment_id)


def detach(backend: SimEc2Backend, attachment_id: str) -> None:
    eni = find_by_attachment(backend, attachment_id)
    if eni.device_index == 0:
        raise errors.SimApiError(
            "OperationNotPermitted",
            "The network interface at device index 0 cannot be detached.",
        )
    backend.begin_detach(eni)


def delete(backend: SimEc2Backend, eni_id: str) -> None:
    eni = backend.get_sim_eni(eni_id)
    if eni.attachment_id:
        raise errors.SimApiError(
            "InvalidNetworkInterface.InUse",
            f"The network interface '{eni_id}' is currently in use.",
        )
    backend.delete_network_interface(eni_id)


def modify_attribute(
    backend: SimEc2Backend,
    eni_id: str,
    *,
    attachment_id: str | None = None,
    delete_on_termination: bool | None = None,
    description: str | None = None,
    source_dest_check: bool | None = None,
    group_ids: list[str] | None = None,
) -> None:
    eni = backend.get_sim_eni(eni_id)
    given = [
        attachment_id is not None or delete_on_termination is not None,
        description is not None,
        source_dest_check is not None,
        bool(group_ids),
    ]
    if sum(given) == 0:
        raise errors.missing("You must specify an attribute to modify.")
    if sum(given) > 1:
        raise errors.combination("Fields for multiple attribute types specified.")
    if given[0]:
        if attachment_id is None or delete_on_termination is None:
            raise errors.missing(
                "Attachment.AttachmentId and Attachment.DeleteOnTermination are both required."
            )
        if eni.attachment_id != attachment_id:
            raise errors.not_found_attachment(attachment_id)
        eni.delete_on_termination = delete_on_termination
    elif description is not None:
        eni.description = description
    elif source_dest_check is not None:
        eni.source_dest_check = source_dest_check
    else:
        groups = []
        for gid in group_ids or []:
            group = backend.get_security_group_from_id(gid)
            if group is None:
                raise errors.SimApiError(
                    "InvalidGroup.NotFound", f"The security group '{gid}' does not exist"
                )
            groups.append(group)
        eni._group_set = groups
