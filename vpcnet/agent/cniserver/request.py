"""One CNI request off the wire, validated again here (never trust the client).

``parse_request`` turns the plugin's JSON into a ``Request`` or raises ``CniError``
with the spec code a runtime expects (decode, version, environment, config).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from vpcnet.agent.ipam import AttachmentKey
from vpcnet.cni import protocol as p
from vpcnet.cni.protocol import CniError

# An ADD (or STATUS) from a plugin that names no budget (an older one): the budget of the
# plugin's default timeout (60 s, less its 5 s margin for the reply).
DEFAULT_ADD_BUDGET_SECONDS = 55.0
_MAX_POD_FIELD = 253  # a Kubernetes name


@dataclass(frozen=True, slots=True)
class Request:
    command: str
    key: AttachmentKey | None = None
    netns: str = ""
    pod_namespace: str = ""
    pod_name: str = ""
    mtu: int | None = None
    expect_ip: ipaddress.IPv4Address | None = None  # CHECK: prevResult's IPv4 (None: none)
    valid: frozenset[AttachmentKey] = frozenset()
    budget: float = DEFAULT_ADD_BUDGET_SECONDS  # ADD: seconds it may wait for an IP
    expect_ip6: ipaddress.IPv6Address | None = None  # CHECK: prevResult's IPv6 (None: none)


def parse_request(raw: bytes) -> Request:
    """Validate one wire request; CniError with the spec code otherwise."""
    try:
        doc = p.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CniError(p.ERR_DECODE, "undecodable request", str(e)[:256]) from e
    if not isinstance(doc, dict):
        raise CniError(p.ERR_DECODE, "request is not a JSON object")
    if doc.get("v") != p.WIRE_VERSION:
        raise CniError(p.ERR_INCOMPATIBLE_VERSION, f"wire version {doc.get('v')!r} not supported")
    command = doc.get("command")
    if command not in p.AGENT_COMMANDS:
        raise CniError(p.ERR_INVALID_ENV, f"unknown command {str(command)[:32]!r}")
    if command == "STATUS":
        return Request(command, budget=_budget(doc))
    if command == "GC":
        valid = doc.get("validAttachments")
        if not isinstance(valid, list) or not all(
            isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v) for v in valid
        ):
            raise CniError(p.ERR_INVALID_CONFIG, "validAttachments must be a list of [containerId, ifname]")
        return Request(command, valid=frozenset(AttachmentKey(c, i) for c, i in valid))
    cid, ifname, netns = doc.get("containerId"), doc.get("ifname"), doc.get("netns", "")
    if not isinstance(cid, str) or not p.valid_container_id(cid):
        raise CniError(p.ERR_INVALID_ENV, "invalid CNI_CONTAINERID")
    if not isinstance(ifname, str) or not p.valid_ifname(ifname):
        raise CniError(p.ERR_INVALID_ENV, "invalid CNI_IFNAME")
    if not isinstance(netns, str) or (netns and not p.valid_netns(netns)):
        raise CniError(p.ERR_INVALID_ENV, "invalid CNI_NETNS")
    if command in ("ADD", "CHECK") and not netns:
        raise CniError(p.ERR_INVALID_ENV, "CNI_NETNS is required")
    names = [doc.get("podNamespace", ""), doc.get("podName", "")]
    if not all(isinstance(n, str) and len(n) <= _MAX_POD_FIELD for n in names):
        raise CniError(p.ERR_INVALID_ENV, "invalid K8S_POD_NAMESPACE / K8S_POD_NAME")
    mtu = doc.get("mtu")
    if mtu is not None and (type(mtu) is not int or not 576 <= mtu <= 9001):
        raise CniError(p.ERR_INVALID_CONFIG, "mtu must be an integer in 576..9001")
    expect = expect6 = None
    if command == "CHECK":
        raw4, raw6 = doc.get("expectIp"), doc.get("expectIp6")
        if raw4 is None and raw6 is None:
            raise CniError(p.ERR_INVALID_CONFIG, "prevResult has no valid IPv4 or IPv6 address")
        try:
            expect = None if raw4 is None else ipaddress.IPv4Address(raw4)
        except ValueError as e:
            raise CniError(p.ERR_INVALID_CONFIG, "prevResult has no valid IPv4 address") from e
        try:
            if raw6 is not None and not isinstance(raw6, str):  # the int form is an address too
                raise ValueError(f"expectIp6 {raw6!r} is not a string")
            expect6 = None if raw6 is None else ipaddress.IPv6Address(raw6)
        except ValueError as e:
            raise CniError(p.ERR_INVALID_CONFIG, "prevResult has no valid IPv6 address") from e
    return Request(command, AttachmentKey(cid, ifname), netns, names[0], names[1], mtu, expect,
                   budget=_budget(doc), expect_ip6=expect6)


def _budget(doc: dict[str, Any]) -> float:
    budget = doc.get("budgetSeconds", DEFAULT_ADD_BUDGET_SECONDS)
    if type(budget) not in (int, float) or not 0 <= budget <= p.MAX_ADD_BUDGET_SECONDS:
        raise CniError(p.ERR_INVALID_CONFIG, f"budgetSeconds must be a number in [0, {p.MAX_ADD_BUDGET_SECONDS:g}]")
    return float(budget)

