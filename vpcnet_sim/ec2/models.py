"""moto's EC2 backend with AWS's ENI semantics grafted on.

moto keeps VPCs, subnets, security groups, instances, tags and the ENI objects that
DescribeInstances and DescribeNetworkInterfaces serialise. This module subclasses the
parts that moto gets wrong so both describes stay consistent with the rules:

* every subnet gets a ``SubnetPool`` (unique, non-reserved addresses, /28 prefixes, a
  free count that never goes negative) that moto's own IP choices also go through;
* ENIs carry delegated prefixes, a unique MAC, and an attachment whose status moves
  ``attaching`` -> ``attached`` (and ``detaching`` -> gone) after configured delays;
* an instance's primary ENI is DeleteOnTermination as on AWS, and a terminated instance
  releases its ENIs (deleted or detached) instead of keeping them "in-use".

The backend is not thread-safe (nor is moto): the server serialises access with a lock.
"""

from __future__ import annotations

import copy
import ipaddress
import random
import time
from collections.abc import Callable
from typing import Any

from moto.ec2.exceptions import InvalidInstanceIdError
from moto.ec2.models import EC2Backend
from moto.ec2.models.elastic_network_interfaces import Attachment, NetworkInterface
from moto.ec2.models.instances import Instance, Reservation
from moto.ec2.models.subnets import Subnet
from moto.ec2.utils import filter_reservations

from vpcnet_sim.ec2 import errors
from vpcnet_sim.ec2.ipam import SubnetPool
from vpcnet_sim.ec2.ipam6 import Ipv6SubnetPool


def _tag_list(backend: Any, resource_id: str, resource_type: str) -> list[dict[str, str]]:
    # moto's get_tags scans every tag of the account per object; read ours directly.
    tags = backend.tags.get(resource_id) or {}
    return [
        {"resource_id": resource_id, "resource_type": resource_type, "key": k, "value": v}
        for k, v in tags.items()
    ]


def subnet_ipv6_cidr(subnet: Any) -> str | None:
    """The subnet's associated IPv6 CIDR (its /64), None for an IPv4-only subnet."""
    for assoc in subnet.ipv6_cidr_block_associations.values():
        if assoc["ipv6CidrBlockState"]["State"] == "associated":
            return str(assoc["ipv6CidrBlock"])
    return None


class SimSubnet(Subnet):
    """A moto subnet whose addresses come from the emulator's ``SubnetPool``."""

    pool: SubnetPool

    @property
    def available_ip_address_count(self) -> int:
        return self.pool.free_count()

    def get_available_subnet_ip(self, instance: Any) -> str:
        # moto asks for the primary IP of a new instance here; the ENI created right
        # after claims it from the pool, so only peek.
        return self.pool.peek_ip()

    def request_ip(self, ip: str, instance: Any) -> None:
        # The ENI that will hold the address claims it (and fails if it is taken).
        return None

    def del_subnet_ip(self, ip: str) -> None:
        # Releases go through the ENI's pool bookkeeping.
        return None

    @property
    def ipv6_cidr_block_association_set(self) -> list[dict[str, Any]]:
        # moto nests the state dict inside another "state" (DescribeSubnets then shows
        # "{'State': 'associated'}" as the state); EC2 says "associated".
        return [
            {
                "associationId": assoc["associationId"],
                "ipv6CidrBlock": assoc["ipv6CidrBlock"],
                "ipv6CidrBlockState": {"state": assoc["ipv6CidrBlockState"]["State"]},
            }
            for assoc in self.ipv6_cidr_block_associations.values()
            if assoc["ipv6CidrBlockState"]["State"] == "associated"
        ]

    def get_tags(self) -> list[dict[str, str]]:
        return _tag_list(self.ec2_backend, self.id, "subnet")


class SimAttachment(Attachment):
    def __init__(self, eni: SimNetworkInterface) -> None:
        super().__init__(eni)
        self.status = eni.attachment_status or "attached"


class SimNetworkInterface(NetworkInterface):
    """An ENI with delegated prefixes and a time-driven attachment state."""

    def __init__(self, backend: SimEc2Backend, subnet: Any, primary_ip: str, **kwargs: Any) -> None:
        super().__init__(backend, subnet, primary_ip, None, **kwargs)
        self.mac_address = backend.new_mac()
        self.ipv4_prefixes: list[dict[str, str]] = []
        self.ipv6_prefixes: list[dict[str, str]] = []  # delegated /80s
        self.ipv6_addresses: list[str] = []  # moto's attribute: DescribeInstances reads it
        self.attached_at = 0.0  # monotonic time the attachment reads "attached"
        self.detach_at: float | None = None  # monotonic time a detach completes
        self.network_card_index = 0

    @property
    def network_interface_id(self) -> str:
        # DescribeInstances serialises ENIs by attribute name; moto's class lacks this one.
        return str(self.id)

    @property
    def sim_backend(self) -> SimEc2Backend:
        backend: SimEc2Backend = self.ec2_backend
        return backend

    @property
    def attachment_status(self) -> str | None:
        if not self.attachment_id:
            return None
        now = self.sim_backend.clock()
        if self.detach_at is not None:
            return "detaching"
        return "attached" if now >= self.attached_at else "attaching"

    @property
    def group_set(self) -> Any:
        # An ENI has its own security groups; moto adds the instance's when attached.
        return self._group_set

    @property
    def attachment(self) -> Attachment | None:
        if self.attachment_id:
            return SimAttachment(self)
        return None

    # -- address views -----------------------------------------------------------------

    @property
    def secondary_ips(self) -> list[str]:
        return [a["PrivateIpAddress"] for a in self.private_ip_addresses if not a.get("Primary")]

    @property
    def all_ips(self) -> list[str]:
        return [a["PrivateIpAddress"] for a in self.private_ip_addresses]

    @property
    def prefixes(self) -> list[str]:
        return [p["Ipv4Prefix"] for p in self.ipv4_prefixes]

    @property
    def ipv4_slots(self) -> int:
        """What counts against the per-ENI IPv4 limit: every address and every prefix."""
        return len(self.private_ip_addresses) + len(self.ipv4_prefixes)

    @property
    def ipv6_prefix_list(self) -> list[str]:
        return [p["Ipv6Prefix"] for p in self.ipv6_prefixes]

    @property
    def ipv6_slots(self) -> int:
        """What counts against the per-ENI IPv6 limit: every address and every /80."""
        return len(self.ipv6_addresses) + len(self.ipv6_prefixes)

    @property
    def pool(self) -> SubnetPool:
        return self.sim_backend.pool(self.subnet.id)

    @property
    def pool6(self) -> Ipv6SubnetPool | None:
        """The subnet's IPv6 pool; None for a subnet without an IPv6 CIDR."""
        return self.sim_backend.pool6(self.subnet.id)

    def add_ips(self, ips: list[str]) -> None:
        self.private_ip_addresses.extend({"Primary": False, "PrivateIpAddress": ip} for ip in ips)

    def remove_ips(self, ips: list[str]) -> None:
        drop = set(ips)
        self.private_ip_addresses = [
            a for a in self.private_ip_addresses if a["PrivateIpAddress"] not in drop
        ]

    def add_prefixes(self, prefixes: list[str]) -> None:
        self.ipv4_prefixes.extend({"Ipv4Prefix": p} for p in prefixes)

    def remove_prefixes(self, prefixes: list[str]) -> None:
        drop = set(prefixes)
        self.ipv4_prefixes = [p for p in self.ipv4_prefixes if p["Ipv4Prefix"] not in drop]

    def add_ipv6_prefixes(self, prefixes: list[str]) -> None:
        self.ipv6_prefixes.extend({"Ipv6Prefix": p} for p in prefixes)

    def remove_ipv6_prefixes(self, prefixes: list[str]) -> None:
        drop = set(prefixes)
        self.ipv6_prefixes = [p for p in self.ipv6_prefixes if p["Ipv6Prefix"] not in drop]

    def remove_ipv6_addresses(self, ips: list[str]) -> None:
        drop = set(ips)
        self.ipv6_addresses = [ip for ip in self.ipv6_addresses if ip not in drop]

    def get_tags(self) -> list[dict[str, str]]:
        return _tag_list(self.ec2_backend, self.id, "network-interface")


class SimInstance(Instance):
    """A moto instance that still describes cleanly once its ENIs are gone."""

    @property
    def private_ip(self) -> str | None:
        nic = self.nics.get(0)
        return nic.private_ip_address if nic else None

    @property
    def private_ip_address(self) -> str | None:
        return self.private_ip

    @property
    def private_dns_name(self) -> str:
        if not self.private_ip:
            return ""
        formatted = self.private_ip.replace(".", "-")
        if self.region_name == "us-east-1":
            return f"ip-{formatted}.ec2.internal"
        return f"ip-{formatted}.{self.region_name}.compute.internal"

    @property
    def public_ip(self) -> str | None:
        nic = self.nics.get(0)
        return nic.public_ip if nic else None

    @property
    def public_ip_address(self) -> str | None:
        return self.public_ip

    def get_tags(self) -> list[dict[str, str]]:
        return _tag_list(self.ec2_backend, self.id, "instance")


class SimEc2Backend(EC2Backend):
    """An EC2Backend owned by one emulator (never registered in moto's global dict)."""

    def __init__(
        self,
        region_name: str,
        account_id: str,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.rng = rng or random.Random()
        self._pools: dict[str, SubnetPool] = {}
        self._pools6: dict[str, Ipv6SubnetPool] = {}  # only subnets with an IPv6 CIDR
        self._macs: set[str] = set()
        self.instances_by_id: dict[str, SimInstance] = {}
        self.reservation_of: dict[str, str] = {}  # instance id -> its reservation's id
        self.pending_detach: set[str] = set()
        # CreateNetworkInterface ClientToken -> (request fingerprint, the ENI it made)
        self.client_tokens: dict[str, tuple[str, SimNetworkInterface]] = {}
        self.attach_delay = 0.0
        self.detach_delay = 0.0
        super().__init__(region_name, account_id)

    # -- subnets ---------------------------------------------------------------------

    def create_subnet(self, *args: Any, **kwargs: Any) -> Subnet:
        subnet = super().create_subnet(*args, **kwargs)
        subnet.__class__ = SimSubnet  # type: ignore[type-abstract]  # moto builds Subnet inline; adopt it
        pool = SubnetPool(ipaddress.IPv4Network(subnet.cidr_block))
        subnet.pool = pool  # type: ignore[attr-defined]
        self._pools[subnet.id] = pool
        ipv6_cidr = subnet_ipv6_cidr(subnet)
        if ipv6_cidr is not None:
            self._pools6[subnet.id] = Ipv6SubnetPool(ipaddress.IPv6Network(ipv6_cidr))
        return subnet

    def delete_subnet(self, subnet_id: str) -> Subnet:
        if any(eni.subnet.id == subnet_id for eni in self.enis.values()):
            raise errors.SimApiError(
                "DependencyViolation",
                f"The subnet '{subnet_id}' has dependencies and cannot be deleted.",
            )
        subnet = super().delete_subnet(subnet_id)
        self._pools.pop(subnet_id, None)
        self._pools6.pop(subnet_id, None)
        return subnet

    def pool(self, subnet_id: str) -> SubnetPool:
        try:
            return self._pools[subnet_id]
        except KeyError:
            raise errors.not_found_subnet(subnet_id) from None

    def pool6(self, subnet_id: str) -> Ipv6SubnetPool | None:
        return self._pools6.get(subnet_id)

    # -- ENIs ------------------------------------------------------------------------

    def new_mac(self) -> str:
        # AWS MACs are unicast, locally administered-looking (0a:.., 0e:.., 12:..) and
        # unique; agents find ENIs by MAC, so uniqueness matters.
        while True:
            mac = "0a:" + ":".join(f"{self.rng.randrange(256):02x}" for _ in range(5))
            if mac not in self._macs:
                self._macs.add(mac)
                return mac

    def create_network_interface(
        self,
        subnet: Any,
        private_ip_address: str | list[str] | None,
        private_ip_addresses: list[dict[str, Any]] | None = None,
        group_ids: list[str] | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        delete_on_termination: bool | None = False,
        **kwargs: Any,
    ) -> SimNetworkInterface:
        """Create an ENI holding only its primary address (claimed from the pool).

        Used by moto for an instance's primary ENI and by the rules for
        CreateNetworkInterface, which then adds secondaries and prefixes.
        """
        if isinstance(subnet, str):
            subnet = self.get_subnet(subnet)
        pool = self.pool(subnet.id)
        if isinstance(private_ip_address, list):
            private_ip_address = private_ip_address[0] if private_ip_address else None
        if private_ip_address:
            pool.claim_ip(private_ip_address)
            primary = private_ip_address
        else:
            primary = pool.allocate_ips(1)[0]
        kwargs.pop("secondary_ips_count", None)
        # IPv6 addresses come from the subnet's Ipv6SubnetPool (the rules add them), not
        # from moto's random pick, which may repeat an address or land in a /80.
        kwargs.pop("ipv6_addresses", None)
        kwargs.pop("ipv6_address_count", None)
        try:
            eni = SimNetworkInterface(  # type: ignore[abstract]
                self,
                subnet,
                primary,
                group_ids=group_ids,
                description=description,
                tags=tags,
                delete_on_termination=delete_on_termination,
                **kwargs,
            )
        except Exception:
            pool.release_ips([primary])
            raise
        self.enis[eni.id] = eni
        return eni

    def get_sim_eni(self, eni_id: str) -> SimNetworkInterface:
        if not eni_id.startswith("eni-"):
            raise errors.malformed_eni(eni_id)
        eni = self.enis.get(eni_id)
        if eni is None:
            raise errors.not_found_eni(eni_id)
        assert isinstance(eni, SimNetworkInterface)
        return eni

    def delete_network_interface(self, eni_id: str) -> None:
        eni = self.get_sim_eni(eni_id)
        del self.enis[eni_id]
        self.pending_detach.discard(eni_id)
        eni.pool.release_ips(eni.all_ips)
        eni.pool.release_prefixes(eni.prefixes)
        pool6 = eni.pool6
        if pool6 is not None:  # a deleted ENI's /80s and addresses are free again
            pool6.release_ips(eni.ipv6_addresses)
            pool6.release_prefixes(eni.ipv6_prefix_list)
        self._macs.discard(eni.mac_address)
        self.tags.pop(eni_id, None)

    def attach(self, eni: SimNetworkInterface, instance: SimInstance, device_index: int) -> str:
        attachment_id = instance.attach_eni(eni, device_index)
        eni.attached_at = self.clock() + self.attach_delay
        eni.detach_at = None
        eni.delete_on_termination = False  # AWS default for AttachNetworkInterface
        return attachment_id

    def begin_detach(self, eni: SimNetworkInterface) -> None:
        if eni.detach_at is not None:
            return
        eni.detach_at = self.clock() + self.detach_delay
        self.pending_detach.add(eni.id)
        self.settle()

    def finish_detach(self, eni: SimNetworkInterface) -> None:
        self.pending_detach.discard(eni.id)
        eni.detach_at = None
        if eni.instance is not None:
            eni.instance.detach_eni(eni)
        eni.delete_on_termination = False

    def settle(self) -> None:
        """Complete detaches whose delay has passed (attach states are computed lazily)."""
        if not self.pending_detach:
            return
        now = self.clock()
        for eni_id in list(self.pending_detach):
            eni = self.enis.get(eni_id)
            if eni is None:
                self.pending_detach.discard(eni_id)
            elif isinstance(eni, SimNetworkInterface) and eni.detach_at is not None and now >= eni.detach_at:
                self.finish_detach(eni)

    # -- instances -------------------------------------------------------------------

    def run_instances(self, *args: Any, **kwargs: Any) -> Any:
        reservation = super().run_instances(*args, **kwargs)
        for instance in reservation.instances:
            instance.__class__ = SimInstance  # type: ignore[type-abstract]  # moto builds it inline
            assert isinstance(instance, SimInstance)
            self.instances_by_id[instance.id] = instance
            self.reservation_of[instance.id] = reservation.id
            primary = instance.nics.get(0)
            if isinstance(primary, SimNetworkInterface):
                primary.attached_at = 0.0  # attached at launch, no "attaching" phase
                pool6 = primary.pool6
                if pool6 is not None and not primary.ipv6_addresses:
                    # A dual-stack subnet: the instance's own IPv6 address, as a launch
                    # with AssignIpv6AddressOnCreation (or Ipv6AddressCount=1) gives.
                    primary.ipv6_addresses.extend(pool6.allocate_ips(1))
                if not any(n.get("DeleteOnTermination") is False for n in kwargs.get("nics", [])):
                    primary.delete_on_termination = True  # AWS default at launch
        return reservation

    def get_sim_instance(self, instance_id: str) -> SimInstance:
        instance = self.instances_by_id.get(instance_id)
        if instance is None:
            if not instance_id.startswith("i-"):
                raise errors.SimApiError(
                    "InvalidInstanceID.Malformed", f'Invalid id: "{instance_id}"'
                )
            raise errors.not_found_instance(instance_id)
        return instance

    # moto finds instances by copying every reservation (or walking every instance) on
    # each call: at thousands of nodes that copy was most of a DescribeInstances under
    # the backend lock. These answer the same from the instance index.

    def get_instance(self, instance_id: str) -> Instance:
        instance = self.instances_by_id.get(instance_id)
        if instance is not None:
            return instance
        # moto's run_instances looks its new instance up (to attach its root volume)
        # before we have indexed it: it is in the newest reservation.
        if self.reservations:
            newest: Reservation = next(reversed(self.reservations.values()))
            for candidate in newest.instances:
                if candidate.id == instance_id:
                    return candidate
        found: Instance = super().get_instance(instance_id)
        return found

    def _reservations_holding(self, instance_ids: list[str]) -> list[Reservation]:
        """Copies of the reservations holding these (known) instances, each narrowed to
        them, by reservation id (the order DescribeInstances answers in)."""
        wanted = set(instance_ids)
        holding = {self.reservation_of[i] for i in wanted if i in self.reservation_of}
        out = []
        for rid in sorted(holding):
            reservation = self.reservations.get(rid)
            if reservation is None:
                continue
            narrowed = copy.copy(reservation)
            narrowed.instances = [i for i in reservation.instances if i.id in wanted]
            out.append(narrowed)
        return out

    def get_reservations_by_instance_ids(
        self, instance_ids: list[str], filters: Any = None
    ) -> list[Reservation]:
        for iid in instance_ids:
            if iid not in self.instances_by_id:
                raise InvalidInstanceIdError(iid)
        reservations = self._reservations_holding(instance_ids)
        return filter_reservations(reservations, filters) if filters is not None else reservations

    def describe_instances(self, filters: Any = None) -> list[Reservation]:
        ids = (filters or {}).get("instance-id")
        if not ids:
            result: list[Reservation] = super().describe_instances(filters)
            return result
        # moto matches instance-id exactly (no wildcards): only these can pass.
        return filter_reservations(self._reservations_holding(list(ids)), filters)

    def terminate_instances(self, instance_ids: list[str]) -> list[tuple[Instance, Any]]:
        # AWS deletes DeleteOnTermination ENIs and detaches the others; moto would leave
        # them "in-use" on a terminated instance. Release them before moto terminates.
        for iid in instance_ids:
            instance = self.get_sim_instance(iid)
            for eni in list(instance.nics.values()):
                if not isinstance(eni, SimNetworkInterface):
                    continue
                delete = bool(eni.delete_on_termination)
                self.finish_detach(eni)
                if delete:
                    self.delete_network_interface(eni.id)
        result: list[tuple[Instance, Any]] = super().terminate_instances(instance_ids)
        return result
