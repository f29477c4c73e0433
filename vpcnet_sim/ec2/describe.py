"""DescribeNetworkInterfaces / DescribeInstances: AWS filters and MaxResults/NextToken.

Filters follow EC2's rules: several values of one filter are ORed, several filters are
ANDed, ``*`` and ``?`` are wildcards, and an unknown filter name is an
InvalidParameterValue (moto answers some of these with HTTP 500).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Any, TypeVar

from vpcnet_sim.ec2 import errors
from vpcnet_sim.ec2.models import SimEc2Backend, SimNetworkInterface

T = TypeVar("T")

MIN_RESULTS = 5
MAX_RESULTS = 1000


def _bool(v: Any) -> list[str]:
    return ["true" if v else "false"]


def _opt(v: Any) -> list[str]:
    return [] if v is None else [str(v)]


# filter name -> values of one ENI for it
_ENI_FIELDS: dict[str, Callable[[SimNetworkInterface], list[str]]] = {
    "network-interface-id": lambda e: [e.id],
    "attachment.instance-id": lambda e: _opt(e.instance.id if e.instance else None),
    "attachment.attachment-id": lambda e: _opt(e.attachment_id),
    "attachment.status": lambda e: _opt(e.attachment_status),
    "attachment.device-index": lambda e: _opt(e.device_index if e.attachment_id else None),
    "attachment.delete-on-termination": lambda e: _bool(e.delete_on_termination)
    if e.attachment_id
    else [],
    "attachment.instance-owner-id": lambda e: _opt(e.owner_id if e.attachment_id else None),
    "attachment.network-card-index": lambda e: ["0"] if e.attachment_id else [],
    "status": lambda e: [e.status],
    "subnet-id": lambda e: [e.subnet.id],
    "vpc-id": lambda e: [e.subnet.vpc_id],
    "availability-zone": lambda e: [e.subnet.availability_zone],
    "description": lambda e: [e.description or ""],
    "mac-address": lambda e: [e.mac_address],
    "private-ip-address": lambda e: e.all_ips,
    "addresses.private-ip-address": lambda e: e.all_ips,
    "private-dns-name": lambda e: _opt(getattr(e, "private_dns_name", None)),
    "ipv4-prefix": lambda e: e.prefixes,
    "ipv6-addresses.ipv6-address": lambda e: list(e.ipv6_addresses),
    "group-id": lambda e: [g.id for g in e.group_set],
    "group-name": lambda e: [g.name for g in e.group_set],
    "owner-id": lambda e: [e.owner_id],
    "requester-id": lambda e: [e.requester_id],
    "requester-managed": lambda e: _bool(e.requester_managed),
    "source-dest-check": lambda e: _bool(e.source_dest_check),
    "interface-type": lambda e: [e.interface_type],
}


def _tag_values(eni: SimNetworkInterface, name: str, backend: SimEc2Backend) -> list[str] | None:
    tags: dict[str, str] = backend.tags.get(eni.id) or {}
    if name.startswith("tag:"):
        key = name[4:]
        return [tags[key]] if key in tags else []
    if name == "tag-key":
        return list(tags)
    if name == "tag-value":
        return list(tags.values())
    return None


def _matches(values: Iterable[str], patterns: Sequence[str]) -> bool:
    for v in values:
        for p in patterns:
            if p == v or (("*" in p or "?" in p) and fnmatchcase(v, p)):
                return True
    return False


def validate_eni_filters(filters: dict[str, list[str]]) -> None:
    for name in filters:
        if name in _ENI_FIELDS or name.startswith("tag:") or name in ("tag-key", "tag-value"):
            continue
        raise errors.invalid_value(f"The filter '{name}' is invalid")


def filter_enis(
    backend: SimEc2Backend, eni_ids: list[str], filters: dict[str, list[str]]
) -> list[SimNetworkInterface]:
    """ENIs matching ids and filters, ordered by id (stable across pages)."""
    validate_eni_filters(filters)
    if eni_ids:
        candidates = [backend.get_sim_eni(i) for i in dict.fromkeys(eni_ids)]
    elif "attachment.instance-id" in filters and not any(
        "*" in v or "?" in v for v in filters["attachment.instance-id"]
    ):
        # Narrow by the instance index instead of scanning every ENI of the account.
        candidates = []
        for iid in filters["attachment.instance-id"]:
            inst = backend.instances_by_id.get(iid)
            if inst is not None:
                candidates.extend(n for n in inst.nics.values() if isinstance(n, SimNetworkInterface))
    else:
        candidates = [e for e in backend.enis.values() if isinstance(e, SimNetworkInterface)]
    out = []
    for eni in candidates:
        ok = True
        for name, patterns in filters.items():
            values = _tag_values(eni, name, backend)
            if values is None:
                values = _ENI_FIELDS[name](eni)
            if not _matches(values, patterns):
                ok = False
                break
        if ok:
            out.append(eni)
    out.sort(key=lambda e: e.id)
    return out


def check_max_results(max_results: int | None, *, with_ids: bool, what: str) -> None:
    if max_results is None:
        return
    if with_ids:
        raise errors.combination(
            f"The parameter {what} cannot be used with the parameter maxResults"
        )
    if not MIN_RESULTS <= max_results <= MAX_RESULTS:
        raise errors.invalid_value(
            f"Value ( {max_results} ) for parameter maxResults is invalid. "
            f"Expecting a value between {MIN_RESULTS} and {MAX_RESULTS}."
        )


_TOKEN_TAG = "v1:"


def encode_token(key: str) -> str:
    return base64.urlsafe_b64encode((_TOKEN_TAG + key).encode()).decode()


def decode_token(token: str) -> str:
    bad = errors.SimApiError(
        "InvalidPaginationToken", "The specified pagination token is not valid or is expired."
    )
    try:
        raw = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as e:
        raise bad from e
    if not raw.startswith(_TOKEN_TAG):
        raise bad
    return raw[len(_TOKEN_TAG) :]


def paginate(
    items: Sequence[T], key: Callable[[T], str], max_results: int | None, next_token: str | None
) -> tuple[list[T], str | None]:
    """One page of ``items`` (sorted by ``key``) after the token's key.

    The token names the last key returned, so deletions between pages never skip or
    repeat an item that still exists.
    """
    start = 0
    if next_token:
        after = decode_token(next_token)
        start = next((i for i, it in enumerate(items) if key(it) > after), len(items))
    if max_results is None:
        return list(items[start:]), None
    page = list(items[start : start + max_results])
    more = start + max_results < len(items)
    return page, (encode_token(key(page[-1])) if more and page else None)
