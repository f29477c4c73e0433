"""Hand-written EC2 XML for the hottest responses (ENI describe/create).

moto's model-driven serializer spends ~5 ms per NetworkInterface (attribute lookup by
alias for every member); a join storm pushes thousands of these. This renders the same
document directly. A test parses both renderings with botocore and requires equality,
so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from xml.sax.saxutils import escape

from vpcnet_sim.ec2.models import SimEc2Backend, SimNetworkInterface

_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


def _el(tag: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = value.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    else:
        text = escape(str(value))
    return f"<{tag}>{text}</{tag}>"


def _items(tag: str, rows: Iterable[str]) -> str:
    return f"<{tag}>" + "".join(f"<item>{r}</item>" for r in rows) + f"</{tag}>"


def eni_xml(backend: SimEc2Backend, eni: SimNetworkInterface) -> str:
    """The members of one NetworkInterface (without the enclosing element)."""
    out = []
    attachment = eni.attachment
    if attachment is not None:
        out.append(
            "<attachment>"
            + _el("attachTime", attachment.attach_time)
            + _el("attachmentId", attachment.attachment_id)
            + _el("deleteOnTermination", bool(attachment.delete_on_termination))
            + _el("deviceIndex", attachment.device_index)
            + _el("networkCardIndex", attachment.network_card_index)
            + _el("instanceId", attachment.instance_id)
            + _el("instanceOwnerId", attachment.instance_owner_id)
            + _el("status", attachment.status)
            + "</attachment>"
        )
    out.append(_el("availabilityZone", eni.subnet.availability_zone))
    out.append(_el("description", eni.description or ""))
    out.append(_items("groupSet", (_el("groupId", g.id) + _el("groupName", g.name) for g in eni.group_set)))
    out.append(_el("interfaceType", eni.interface_type))
    out.append(_items("ipv6AddressesSet", (_el("ipv6Address", ip) for ip in eni.ipv6_addresses)))
    out.append(_el("macAddress", eni.mac_address))
    out.append(_el("networkInterfaceId", eni.id))
    out.append(_el("ownerId", eni.owner_id))
    out.append(_el("privateDnsName", getattr(eni, "private_dns_name", None)))
    out.append(_el("privateIpAddress", eni.private_ip_address))
    out.append(
        _items(
            "privateIpAddressesSet",
            (
                _el("primary", bool(a.get("Primary")))
                + _el("privateDnsName", a.get("PrivateDnsName"))
                + _el("privateIpAddress", a["PrivateIpAddress"])
                for a in eni.private_ip_addresses
            ),
        )
    )
    out.append(_items("ipv4PrefixSet", (_el("ipv4Prefix", p) for p in eni.prefixes)))
    out.append(_items("ipv6PrefixSet", (_el("ipv6Prefix", p) for p in eni.ipv6_prefix_list)))
    out.append(_el("requesterId", eni.requester_id))
    out.append(_el("requesterManaged", bool(eni.requester_managed)))
    out.append(_el("sourceDestCheck", bool(eni.source_dest_check)))
    out.append(_el("status", eni.status))
    out.append(_el("subnetId", eni.subnet.id))
    tags = backend.tags.get(eni.id) or {}
    out.append(_items("tagSet", (_el("key", k) + _el("value", v) for k, v in tags.items())))
    out.append(_el("vpcId", eni.subnet.vpc_id))
    return "".join(out)


def _document(action: str, request_id: str, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<{action}Response xmlns="{_NS}"><requestId>{escape(request_id)}</requestId>'
        f"{body}</{action}Response>"
    )


def describe_network_interfaces(
    backend: SimEc2Backend, enis: Iterable[SimNetworkInterface], next_token: str | None,
    request_id: str = "request-id",
) -> str:
    body = _items("networkInterfaceSet", (eni_xml(backend, e) for e in enis))
    return _document("DescribeNetworkInterfaces", request_id, body + _el("nextToken", next_token))


def create_network_interface(
    backend: SimEc2Backend, eni: SimNetworkInterface, client_token: str | None,
    request_id: str = "request-id",
) -> str:
    body = f"<networkInterface>{eni_xml(backend, eni)}</networkInterface>"
    return _document("CreateNetworkInterface", request_id, body + _el("clientToken", client_token))
