"""Instance metadata emulator: the real IMDS layout under ``/_imds/<instance-id>/``.

An agent configured with ``imds_url = http://HOST:PORT/_imds/i-0abc`` reads the same
paths it reads from 169.254.169.254 (IMDSv2 tokens included). Only ENIs whose
attachment reads ``attached`` appear, as hot-plugged interfaces appear on a real host.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any, Union

from vpcnet_sim.ec2.models import SimEc2Backend, SimInstance, SimNetworkInterface, subnet_ipv6_cidr
from vpcnet_sim.ec2.views import vpc_cidrs, vpc_ipv6_cidrs

Tree = dict[str, Union[str, "Tree"]]

TOKEN_HEADER = "X-aws-ec2-metadata-token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
_MAX_TTL = 21600


class TokenStore:
    """IMDSv2 session tokens with their expiry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}

    def issue(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            # drop expired tokens so a long-running emulator does not grow without bound
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + ttl
        return token

    def valid(self, token: str) -> bool:
        with self._lock:
            exp = self._tokens.get(token)
        return exp is not None and exp > time.monotonic()


def _mac_tree(backend: SimEc2Backend, instance: SimInstance, eni: SimNetworkInterface) -> Tree:
    cidrs = vpc_cidrs(backend, eni.subnet.vpc_id)
    tree: Tree = {
        "device-number": str(eni.device_index),
        "interface-id": eni.id,
        "local-hostname": _hostname(eni.private_ip_address or "", backend.region_name),
        "local-ipv4s": "\n".join(eni.all_ips),
        "mac": eni.mac_address,
        "network-card": "0",
        "owner-id": instance.owner_id,
        "security-group-ids": "\n".join(sorted(g.id for g in eni.group_set)),
        "security-groups": "\n".join(sorted(g.name for g in eni.group_set)),
        "subnet-id": eni.subnet.id,
        "subnet-ipv4-cidr-block": eni.subnet.cidr_block,
        "vpc-id": eni.subnet.vpc_id,
        "vpc-ipv4-cidr-block": cidrs[0],
        "vpc-ipv4-cidr-blocks": "\n".join(cidrs),
    }
    if eni.prefixes:  # the key only exists once a prefix is delegated, as on EC2
        tree["ipv4-prefix"] = "\n".join(eni.prefixes)
    # IPv6 keys exist only when there is something to list, as on EC2.
    if eni.ipv6_addresses:
        tree["ipv6s"] = "\n".join(eni.ipv6_addresses)
    if eni.ipv6_prefixes:
        tree["ipv6-prefix"] = "\n".join(eni.ipv6_prefix_list)
    subnet6 = subnet_ipv6_cidr(eni.subnet)
    if subnet6:
        tree["subnet-ipv6-cidr-blocks"] = subnet6
    vpc6 = vpc_ipv6_cidrs(backend, eni.subnet.vpc_id)
    if vpc6:
        tree["vpc-ipv6-cidr-blocks"] = "\n".join(vpc6)
    return dict(sorted(tree.items()))  # IMDS lists keys in alphabetical order


def _hostname(ip: str, region: str) -> str:
    host = "ip-" + ip.replace(".", "-")
    return f"{host}.ec2.internal" if region == "us-east-1" else f"{host}.{region}.compute.internal"


def metadata_tree(backend: SimEc2Backend, instance: SimInstance) -> Tree:
    attached = [
        eni
        for _, eni in sorted(instance.nics.items())
        if isinstance(eni, SimNetworkInterface) and eni.attachment_status == "attached"
    ]
    primary = instance.nics.get(0)
    local_ip = instance.private_ip or ""
    macs: Tree = {eni.mac_address: _mac_tree(backend, instance, eni) for eni in attached}
    az = instance.placement.zone or ""
    identity = {
        "accountId": instance.owner_id,
        "architecture": "x86_64",
        "availabilityZone": az,
        "imageId": instance.image_id,
        "instanceId": instance.id,
        "instanceType": instance.instance_type,
        "privateIp": local_ip,
        "region": backend.region_name,
        "version": "2017-09-30",
    }
    return {
        "meta-data": {
            "ami-id": str(instance.image_id),
            "hostname": _hostname(local_ip, backend.region_name),
            "instance-id": instance.id,
            "instance-type": instance.instance_type,
            "local-hostname": _hostname(local_ip, backend.region_name),
            "local-ipv4": local_ip,
            "mac": primary.mac_address if isinstance(primary, SimNetworkInterface) else "",
            "placement": {"availability-zone": az, "region": backend.region_name},
            "network": {"interfaces": {"macs": macs}},
        },
        "dynamic": {"instance-identity": {"document": json.dumps(identity, indent=2)}},
    }


def _render(node: str | Tree) -> str:
    if isinstance(node, str):
        return node
    return "\n".join(k + "/" if isinstance(v, dict) else k for k, v in node.items())


def handle(
    backend: SimEc2Backend,
    tokens: TokenStore,
    instance_id: str,
    path: str,
    method: str,
    headers: Mapping[str, str],
) -> tuple[int, str]:
    """Answer one IMDS request: (HTTP status, text body). Call under the backend lock.

    ``headers`` must have lower-cased names.
    """
    path = path.strip("/")
    if path == "latest/api/token":
        if method != "PUT":
            return 405, "Method Not Allowed"
        try:
            ttl = int(headers.get(TTL_HEADER.lower(), ""))
        except ValueError:
            return 400, "Bad Request"
        if not 1 <= ttl <= _MAX_TTL:
            return 400, "Bad Request"
        return 200, tokens.issue(ttl)
    if method != "GET":
        return 405, "Method Not Allowed"
    token = headers.get(TOKEN_HEADER.lower())
    if token is not None and not tokens.valid(token):
        return 401, "Unauthorized"
    instance = backend.instances_by_id.get(instance_id)
    if instance is None or instance.state == "terminated":
        return 404, "Not Found"
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] != "latest":
        return 404, "Not Found"
    node: Any = metadata_tree(backend, instance)
    if len(parts) == 1:
        return 200, _render(node)
    for part in parts[1:]:
        if not isinstance(node, dict) or part not in node:
            return 404, "Not Found"
        node = node[part]
    return 200, _render(node)
