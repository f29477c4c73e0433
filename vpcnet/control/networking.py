"""Per-node networking choices: mode, IP family, subnet and security groups (custom networking).

Defaults come from the cluster settings and the instance (its subnet, its groups). A node
overrides them with annotations, or with a profile: named in the ``vpcnet.io/profile``
annotation, or the first profile whose ``node_selector`` matches the node's labels.
Profiles are a JSON file (``Settings.profiles_path``, e.g. a mounted ConfigMap)::

    {"profiles": [{"name": "pods-b", "node_selector": {"pool": "b"},
                   "subnet_tags": {"vpcnet.io/pods": "b"}, "security_groups": ["sg-1"],
                   "mode": "warm", "ip_family": "dual"}]}

Pure apart from reading that file; invalid input is a ``ConfigError`` (permanent).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vpcnet.control.view import SubnetView
from vpcnet.domain import IpFamily, Mode
from vpcnet.errors import ConfigError
from vpcnet.wellknown import (
    IP_FAMILY_ANNOTATION,
    MODE_ANNOTATION,
    PROFILE_ANNOTATION,
    SECURITY_GROUPS_ANNOTATION,
    SUBNET_ANNOTATION,
    SUBNET_TAGS_ANNOTATION,
)

_SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SG_RE = re.compile(r"^sg-[0-9a-f]{8,17}$")
# AWS's own limits: an ENI takes at most 16 security groups (5 by default); tag keys are
# at most 128 characters, values 256. An annotation is anyone-with-node-patch input that
# becomes EC2 filters: bound it before it reaches EC2.
MAX_SECURITY_GROUPS = 16
MAX_SUBNET_TAGS = 10
MAX_TAG_KEY, MAX_TAG_VALUE = 128, 256


def _show(raw: object) -> str:
    """A bad value as an error (and so a node Event) quotes it: shortened."""
    text = repr(raw)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    node_selector: Mapping[str, str] = field(default_factory=dict)
    mode: Mode | None = None
    ip_family: IpFamily | None = None
    subnet_id: str | None = None
    subnet_tags: Mapping[str, str] | None = None
    security_groups: tuple[str, ...] | None = None

    def selects(self, labels: Mapping[str, str]) -> bool:
        return bool(self.node_selector) and all(
            labels.get(k) == v for k, v in self.node_selector.items()
        )


@dataclass(frozen=True, slots=True)
class NodeNetworking:
    mode: Mode
    subnet_id: str | None = None  # None: the instance's subnet (unless subnet_tags)
    subnet_tags: Mapping[str, str] | None = None
    security_groups: tuple[str, ...] | None = None  # None: the instance's groups
    profile: str | None = None
    ip_family: IpFamily = IpFamily.IPV4


def _mode(raw: str, where: str) -> Mode:
    try:
        return Mode(raw.strip())
    except ValueError:
        raise ConfigError(f"{where}: mode {_show(raw)} is not one of full, warm, prefix") from None


def _family(raw: str, where: str) -> IpFamily:
    try:
        return IpFamily(raw.strip())
    except ValueError:
        raise ConfigError(f"{where}: ip family {_show(raw)} is not one of ipv4, ipv6, dual") from None


def _subnet(raw: str, where: str) -> str:
    if not _SUBNET_RE.match(raw.strip()):
        raise ConfigError(f"{where}: {_show(raw)} is not a subnet id")
    return raw.strip()


def _groups(raw: Sequence[str], where: str) -> tuple[str, ...]:
    if len(raw) > MAX_SECURITY_GROUPS:
        raise ConfigError(f"{where}: {len(raw)} security groups, at most {MAX_SECURITY_GROUPS}")
    groups = tuple(g.strip() for g in raw if g.strip())
    bad = [g for g in groups if not _SG_RE.match(g)]
    if bad or not groups:
        raise ConfigError(f"{where}: invalid security group list {_show(list(raw))}")
    return groups


def _tags(raw: str, where: str) -> dict[str, str]:
    parts = raw.split(",")
    if len(parts) > MAX_SUBNET_TAGS:
        raise ConfigError(f"{where}: {len(parts)} subnet tags, at most {MAX_SUBNET_TAGS}")
    out: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{where}: subnet tags must be k=v[,k=v], got {_show(raw)}")
        if len(key.strip()) > MAX_TAG_KEY or len(value.strip()) > MAX_TAG_VALUE:
            raise ConfigError(f"{where}: a tag key is at most {MAX_TAG_KEY} characters, "
                              f"a value {MAX_TAG_VALUE}")
        out[key.strip()] = value.strip()
    return out


def parse_profile(d: Mapping[str, Any]) -> Profile:
    name = str(d.get("name", ""))
    where = f"profile {name!r}"
    if not name:
        raise ConfigError("a profile needs a name")
    sel = d.get("node_selector") or {}
    tags = d.get("subnet_tags")
    groups = d.get("security_groups")
    if not isinstance(sel, dict) or (tags is not None and not isinstance(tags, dict)):
        raise ConfigError(f"{where}: node_selector and subnet_tags must be objects")
    return Profile(
        name=name,
        node_selector={str(k): str(v) for k, v in sel.items()},
        mode=_mode(str(d["mode"]), where) if d.get("mode") else None,
        ip_family=_family(str(d["ip_family"]), where) if d.get("ip_family") else None,
        subnet_id=_subnet(str(d["subnet_id"]), where) if d.get("subnet_id") else None,
        subnet_tags={str(k): str(v) for k, v in tags.items()} if tags else None,
        security_groups=_groups([str(g) for g in groups], where) if groups else None,
    )


def load_profiles(path: str | None) -> dict[str, Profile]:
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read profiles from {path}: {e}") from e
    profiles = [parse_profile(p) for p in raw.get("profiles", ())]
    return {p.name: p for p in profiles}


def node_networking(
    default_mode: Mode,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    profiles: Mapping[str, Profile],
    default_family: IpFamily = IpFamily.IPV4,
) -> NodeNetworking:
    """The node's choices: annotations override the profile, which overrides defaults
    (``default_mode``, ``default_family``: the cluster settings)."""
    profile: Profile | None = None
    if PROFILE_ANNOTATION in annotations:
        name = annotations[PROFILE_ANNOTATION]
        if name not in profiles:
            raise ConfigError(f"annotation {PROFILE_ANNOTATION}: no profile named {_show(name)}")
        profile = profiles[name]
    else:
        profile = next((p for p in profiles.values() if p.selects(labels)), None)

    mode = profile.mode if profile and profile.mode else default_mode
    family = profile.ip_family if profile and profile.ip_family else default_family
    subnet_id = profile.subnet_id if profile else None
    subnet_tags = profile.subnet_tags if profile else None
    groups = profile.security_groups if profile else None
    if MODE_ANNOTATION in annotations:
        mode = _mode(annotations[MODE_ANNOTATION], f"annotation {MODE_ANNOTATION}")
    if IP_FAMILY_ANNOTATION in annotations:
        family = _family(annotations[IP_FAMILY_ANNOTATION], f"annotation {IP_FAMILY_ANNOTATION}")
    if SUBNET_ANNOTATION in annotations:
        subnet_id, subnet_tags = _subnet(annotations[SUBNET_ANNOTATION], f"annotation {SUBNET_ANNOTATION}"), None
    elif SUBNET_TAGS_ANNOTATION in annotations:
        subnet_tags = _tags(annotations[SUBNET_TAGS_ANNOTATION], f"annotation {SUBNET_TAGS_ANNOTATION}")
        subnet_id = None
    if SECURITY_GROUPS_ANNOTATION in annotations:
        groups = _groups(annotations[SECURITY_GROUPS_ANNOTATION].split(","), f"annotation {SECURITY_GROUPS_ANNOTATION}")
    return NodeNetworking(mode, subnet_id, subnet_tags, groups, profile.name if profile else None, family)


def choose_subnet(candidates: Sequence[SubnetView], availability_zone: str) -> SubnetView:
    """The candidate in the node's AZ with the most free addresses (ties: lowest id)."""
    in_az = [s for s in candidates if s.availability_zone == availability_zone]
    if not in_az:
        raise ConfigError(f"no subnet matching the node's tags in {availability_zone}")
    return sorted(in_az, key=lambda s: (-s.available_ips, s.subnet_id))[0]
