"""Admin API under ``/_sim/`` (JSON; never throttled, delayed or counted).

=========================  ===================================================
GET    health              ``{"ok": true}``
GET    counters            calls / throttled / errors per action
POST   counters/reset      zero the counters
GET    faults              current fault set
POST   faults              replace it: ``{"rate_5xx": 0.1, "rules": [{"action":
                           "AttachNetworkInterface", "code": "InternalError",
                           "count": 2, "after": false}]}``
GET    config              current options
POST   config              change options: ``{"latency": "aws"|"fast",
                           "throttle": bool, "attach_delay": s, "detach_delay": s,
                           "bucket_overrides": {"Action": [capacity, refill]}}``
POST   bootstrap           create a VPC + subnets + SG: ``{"cidr", "subnets", "azs",
                           "ipv4_only_subnets"}`` (those get no IPv6 /64)
GET    subnets             every subnet: id, cidr, ipv6_cidr (None: IPv4-only), vpc, AZ
GET    instances           every instance with its ENIs
POST   instances           run one: ``{"instance_type", "subnet_id", "name",
                           "security_group_ids", "tags"}``
GET    instances/<id>      one instance with its ENIs
DELETE instances/<id>      terminate it (honours DeleteOnTermination)
=========================  ===================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vpcnet.aws.buckets import Bucket
from vpcnet.errors import VpcnetError
from vpcnet_sim.ec2.faults import FaultRule

if TYPE_CHECKING:
    from vpcnet_sim.ec2.emulator import Ec2Emulator

Result = tuple[int, Any]


def _config(emu: Ec2Emulator, body: dict[str, Any]) -> Result:
    changes: dict[str, Any] = {}
    for key in ("throttle",):
        if key in body:
            changes[key] = bool(body[key])
    for key in ("attach_delay", "detach_delay"):
        if key in body:
            changes[key] = float(body[key])
    if "bucket_overrides" in body:
        changes["bucket_overrides"] = {
            k: Bucket(int(v[0]), float(v[1])) for k, v in dict(body["bucket_overrides"]).items()
        }
    emu.set_config(preset=body.get("latency"), **changes)
    return 200, emu.config.to_dict()


def _faults(emu: Ec2Emulator, body: dict[str, Any]) -> Result:
    rules = [FaultRule.from_dict(r) for r in body.get("rules", [])]
    emu.set_faults(rate_5xx=float(body.get("rate_5xx", 0.0)), rules=rules)
    return 200, emu.faults.snapshot()


def _bootstrap(emu: Ec2Emulator, body: dict[str, Any]) -> Result:
    kwargs: dict[str, Any] = {}
    if "cidr" in body:
        kwargs["cidr"] = str(body["cidr"])
    if "subnets" in body:
        kwargs["subnets"] = tuple(body["subnets"])
    if "azs" in body:
        kwargs["azs"] = tuple(body["azs"])
    if "ipv4_only_subnets" in body:
        kwargs["ipv4_only_subnets"] = tuple(body["ipv4_only_subnets"])
    return 200, emu.bootstrap_vpc(**kwargs).to_dict()


def _run(emu: Ec2Emulator, body: dict[str, Any]) -> Result:
    iid = emu.run_instance(
        instance_type=str(body.get("instance_type", "m5.large")),
        subnet_id=body.get("subnet_id"),
        name=body.get("name"),
        security_group_ids=tuple(body.get("security_group_ids") or ()) or None,
        tags=dict(body.get("tags") or {}),
    )
    return 200, emu.instance_view(iid)


def _route(emu: Ec2Emulator, method: str, path: str, body: dict[str, Any]) -> Result:
    parts = [p for p in path.split("/") if p]
    if method == "GET" and parts == ["health"]:
        return 200, {"ok": True, "endpoint": emu.endpoint_url}
    if parts == ["counters"] and method == "GET":
        return 200, emu.counters()
    if parts == ["counters", "reset"] and method == "POST":
        emu.reset_counters()
        return 200, emu.counters()
    if parts == ["faults"]:
        return (200, emu.faults.snapshot()) if method == "GET" else _faults(emu, body)
    if parts == ["config"]:
        return (200, emu.config.to_dict()) if method == "GET" else _config(emu, body)
    if parts == ["bootstrap"] and method == "POST":
        return _bootstrap(emu, body)
    if parts == ["subnets"] and method == "GET":
        return 200, emu.subnets_view()
    if parts == ["instances"]:
        return (200, emu.instances_view()) if method == "GET" else _run(emu, body)
    if len(parts) == 2 and parts[0] == "instances":
        if method == "GET":
            return 200, emu.instance_view(parts[1])
        if method == "DELETE":
            emu.terminate_instance(parts[1])
            return 200, emu.instance_view(parts[1])
    return 404, {"error": f"no admin route {method} /_sim/{path}"}


def handle(emu: Ec2Emulator, method: str, path: str, body: Any) -> Result:
    if body is not None and not isinstance(body, dict):
        return 400, {"error": "body must be a JSON object"}
    try:
        return _route(emu, method, path, body or {})
    except (VpcnetError, ValueError, KeyError, TypeError) as e:
        code = getattr(e, "code", type(e).__name__)
        return 400, {"error": str(e), "code": code}
