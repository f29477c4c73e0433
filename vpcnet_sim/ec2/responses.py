"""The EC2 Query API front: moto's response class with the ENI actions replaced.

moto parses each request with botocore's model (so ``_get_param`` yields typed values)
and serialises results the same way; the replaced actions call ``rules`` instead of
moto's backend methods. Every other action is moto's own.
"""

from __future__ import annotations

import json
from typing import Any

import moto.core.responses as moto_responses
from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.responses import EC2Response

from vpcnet_sim.ec2 import errors, fastxml, rules, rules6
from vpcnet_sim.ec2.describe import check_max_results, filter_enis, paginate
from vpcnet_sim.ec2.models import SimEc2Backend


class SimEc2Response(EC2Response):
    """One request against one emulator's backend (never moto's global backends)."""

    # Render ENI describe/create with fastxml instead of moto's serializer (tests flip
    # this to compare both renderings).
    fast_xml = True

    def __init__(self, backend: SimEc2Backend) -> None:
        super().__init__()
        self._sim_backend = backend

    @property
    def ec2_backend(self) -> SimEc2Backend:
        return self._sim_backend

    # -- helpers ---------------------------------------------------------------------

    def _list(self, name: str) -> list[Any]:
        value = self._get_param(name, [])
        return list(value or [])

    def _address_request(self, *, struct_prefixes: bool) -> rules.AddressRequest:
        raw_prefixes = self._list("Ipv4Prefixes")
        prefixes = [p["Ipv4Prefix"] if struct_prefixes else p for p in raw_prefixes]
        return rules.AddressRequest(
            ips=tuple(self._list("PrivateIpAddresses")) if not struct_prefixes else (),
            ip_count=int(self._get_param("SecondaryPrivateIpAddressCount") or 0),
            prefixes=tuple(prefixes),
            prefix_count=int(self._get_param("Ipv4PrefixCount") or 0),
        )

    def _ipv6_request(self, *, structs: bool) -> rules6.Ipv6Request:
        """The IPv6 part of a request; CreateNetworkInterface wraps each address and
        prefix in a structure, AssignIpv6Addresses lists plain strings."""
        ips = self._list("Ipv6Addresses")
        prefixes = self._list("Ipv6Prefixes")
        return rules6.Ipv6Request(
            ips=tuple(i["Ipv6Address"] if structs else i for i in ips),
            ip_count=int(self._get_param("Ipv6AddressCount") or 0),
            prefixes=tuple(p["Ipv6Prefix"] if structs else p for p in prefixes),
            prefix_count=int(self._get_param("Ipv6PrefixCount") or 0),
        )

    def _tags(self, resource_type: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        for spec in self._list("TagSpecifications"):
            if spec.get("ResourceType") != resource_type:
                raise errors.invalid_value(
                    f"'{spec.get('ResourceType')}' is not a valid taggable resource type "
                    "for this operation."
                )
            for tag in spec.get("Tags", []):
                tags[tag["Key"]] = tag.get("Value", "")
        return tags

    def _fingerprint(self) -> str:
        params = {k: v for k, v in self.params.items() if k not in ("ClientToken", "DryRun")}
        return json.dumps(params, sort_keys=True, default=str)

    # -- ENI actions -----------------------------------------------------------------

    def create_network_interface(self) -> ActionResult | str:  # type: ignore[override]
        self.error_on_dryrun()
        backend = self.ec2_backend
        token = self._get_param("ClientToken")
        fingerprint = self._fingerprint()
        if token:
            seen = backend.client_tokens.get(token)
            if seen is not None:
                if seen[0] != fingerprint:
                    raise errors.SimApiError(
                        "IdempotentParameterMismatch",
                        f"The client token '{token}' was already used with different "
                        "parameters.",
                    )
                return self._eni_result(seen[1], token)
        primary: str | None = self._get_param("PrivateIpAddress")
        explicit: list[str] = []
        for entry in self._list("PrivateIpAddresses"):
            ip = entry.get("PrivateIpAddress")
            if entry.get("Primary") and not primary:
                primary = ip
            elif ip and ip != primary:
                explicit.append(ip)
        base = self._address_request(struct_prefixes=True)
        req = rules.AddressRequest(
            ips=tuple(explicit),
            ip_count=base.ip_count,
            prefixes=base.prefixes,
            prefix_count=base.prefix_count,
        )
        subnet_id = self._get_param("SubnetId")
        if not subnet_id:
            raise errors.missing("The request must contain the parameter SubnetId")
        eni = rules.create_eni(
            backend,
            subnet_id=subnet_id,
            primary_ip=primary,
            req=req,
            group_ids=self._list("Groups"),
            description=self._get_param("Description") or "",
            tags=self._tags("network-interface"),
            req6=self._ipv6_request(structs=True),
        )
        if token:
            backend.client_tokens[token] = (fingerprint, eni)
        return self._eni_result(eni, token)

    def _eni_result(self, eni: Any, token: str | None) -> ActionResult | str:
        if self.fast_xml:
            return fastxml.create_network_interface(self.ec2_backend, eni, token)
        return ActionResult({"NetworkInterface": eni, "ClientToken": token})

    def delete_network_interface(self) -> ActionResult:
        self.error_on_dryrun()
        rules.delete(self.ec2_backend, self._get_param("NetworkInterfaceId"))
        return EmptyResult()

    def attach_network_interface(self) -> ActionResult:
        self.error_on_dryrun()
        device_index = self._get_param("DeviceIndex")
        if device_index is None:
            raise errors.missing("The request must contain the parameter DeviceIndex")
        attachment_id = rules.attach(
            self.ec2_backend,
            self._get_param("NetworkInterfaceId"),
            self._get_param("InstanceId"),
            int(device_index),
        )
        return ActionResult({"AttachmentId": attachment_id, "NetworkCardIndex": 0})

    def detach_network_interface(self) -> ActionResult:
        self.error_on_dryrun()
        rules.detach(self.ec2_backend, self._get_param("AttachmentId"))
        return EmptyResult()

    def assign_private_ip_addresses(self) -> ActionResult:
        eni_id = self._get_param("NetworkInterfaceId")
        ips, prefixes = rules.assign(
            self.ec2_backend,
            eni_id,
            self._address_request(struct_prefixes=False),
            allow_reassignment=bool(self._get_param("AllowReassignment")),
        )
        return ActionResult(
            {
                "NetworkInterfaceId": eni_id,
                "AssignedPrivateIpAddresses": [{"PrivateIpAddress": ip} for ip in ips],
                "AssignedIpv4Prefixes": [{"Ipv4Prefix": p} for p in prefixes],
            }
        )

    def unassign_private_ip_addresses(self) -> ActionResult:
        rules.unassign(
            self.ec2_backend,
            self._get_param("NetworkInterfaceId"),
            self._list("PrivateIpAddresses"),
            self._list("Ipv4Prefixes"),
        )
        return EmptyResult()

    def assign_ipv6_addresses(self) -> ActionResult:
        eni_id = self._get_param("NetworkInterfaceId")
        taken = rules6.assign(self.ec2_backend, eni_id, self._ipv6_request(structs=False))
        return ActionResult(
            {
                "NetworkInterfaceId": eni_id,
                "AssignedIpv6Addresses": taken.ips,
                "AssignedIpv6Prefixes": taken.prefixes,
            }
        )

    def unassign_ipv6_addresses(self) -> ActionResult:
        eni_id = self._get_param("NetworkInterfaceId")
        freed = rules6.unassign(
            self.ec2_backend, eni_id, self._list("Ipv6Addresses"), self._list("Ipv6Prefixes")
        )
        return ActionResult(
            {
                "NetworkInterfaceId": eni_id,
                "UnassignedIpv6Addresses": freed.ips,
                "UnassignedIpv6Prefixes": freed.prefixes,
            }
        )

    def modify_network_interface_attribute(self) -> ActionResult:
        self.error_on_dryrun()
        attachment = self._get_param("Attachment") or {}
        description = self._get_param("Description") or {}
        sdc = self._get_param("SourceDestCheck") or {}
        rules.modify_attribute(
            self.ec2_backend,
            self._get_param("NetworkInterfaceId"),
            attachment_id=attachment.get("AttachmentId"),
            delete_on_termination=attachment.get("DeleteOnTermination"),
            description=description.get("Value"),
            source_dest_check=sdc.get("Value"),
            group_ids=self._list("Groups"),
        )
        return EmptyResult()

    def describe_network_interfaces(self) -> ActionResult | str:  # type: ignore[override]
        self.error_on_dryrun()
        ids = self._list("NetworkInterfaceIds")
        max_results = self._get_param("MaxResults")
        check_max_results(max_results, with_ids=bool(ids), what="networkInterfaceIdSet")
        filters: dict[str, list[str]] = dict(self._filters_from_querystring())  # type: ignore[arg-type]
        enis = filter_enis(self.ec2_backend, ids, filters)
        page, token = paginate(enis, lambda e: e.id, max_results, self._get_param("NextToken"))
        if self.fast_xml:
            return fastxml.describe_network_interfaces(self.ec2_backend, page, token)
        return ActionResult({"NetworkInterfaces": page, "NextToken": token})

    # -- instances -------------------------------------------------------------------

    def describe_instances(self) -> ActionResult:
        self.error_on_dryrun()
        ids = self._list("InstanceIds")
        max_results = self._get_param("MaxResults")
        check_max_results(max_results, with_ids=bool(ids), what="instancesSet")
        filters = self._filters_from_querystring()
        backend = self.ec2_backend
        if ids:
            reservations = backend.get_reservations_by_instance_ids(ids, filters=filters)
        else:
            reservations = backend.describe_instances(filters=filters)
        reservations = sorted(reservations, key=lambda r: r.id)
        page, token = paginate(
            reservations, lambda r: r.id, max_results, self._get_param("NextToken")
        )
        return ActionResult({"Reservations": page, "NextToken": token})


# moto's call_action lists the response class's methods with inspect.getmembers on every
# request (~2 ms, a fifth of a call). Our class never changes at runtime, so answer for
# it from a cache; every other class still goes to moto's function.
_method_names = moto_responses.method_names_from_class  # type: ignore[attr-defined]
_SIM_METHODS = _method_names(SimEc2Response)


def _cached_method_names(clazz: object) -> list[str]:
    return _SIM_METHODS if clazz is SimEc2Response else _method_names(clazz)


moto_responses.method_names_from_class = _cached_method_names  # type: ignore[attr-defined]
