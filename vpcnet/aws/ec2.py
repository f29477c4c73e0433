"""The boto3 adapter: the one choke point every EC2 call of vpcnet passes.

Each call waits for a token of the shared rate limiter, is counted and timed, and its
errors are translated into ``Ec2TemporaryError`` / ``Ec2PermanentError``. botocore's own
retries are off so that a throttle is seen and counted: a throttled call drains the
shared bucket and waits for the next token (it is never surfaced unless throttling
persists). SDK dicts become ``vpcnet.control.view`` values here, and nowhere else.

Every mutating call is fenced (invariant 9): right before it leaves, after any wait for
the rate limiter, the lock of the current pass (``vpcnet.aws.fence``) is verified and
extended, in one atomic step, to outlast the call: ``MUTATION_BUDGET_SECONDS``, the
longest one attempt can take (connect + read timeout, botocore retries off, plus a
margin). So no other pass can take the lock while a call is in flight, and once the lock
is lost no further call is made. A call that times out may still be carried out by
EC2: the lock then lingers (kept another budget, never released early). What fencing
by lease cannot cover (EC2 takes no fencing token): a process paused after the check
for longer than the budget, or EC2 acting on a request later than the budget after it
left.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import boto3
import botocore.exceptions
from botocore import xform_name
from botocore.config import Config

from vpcnet.aws.calls import CallRecorder
from vpcnet.aws.fence import Fence, current_fence
from vpcnet.aws.ratelimit import RateLimiter
from vpcnet.control.view import EniView, InstanceView, SubnetView
from vpcnet.domain import InstanceLimits, IPv4, IPv4Net, IPv6Net
from vpcnet.errors import Ec2Error, Ec2PermanentError, Ec2TemporaryError
from vpcnet.observability.metrics import record_ec2_call

_THROTTLE = frozenset(
    {"RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled"}
)
# Codes worth retrying besides 5xx: AWS's eventual consistency and transient states.
_TEMPORARY = frozenset(
    {"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "IncorrectState"}
)
_CONNECTION_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
)
# One attempt of one call is bounded by these (botocore's retries are off), so the fence
# knows how long a mutating call can be in flight. EC2 answers in well under a second;
# the read timeout leaves room for a large Describe page. The budget equals the node
# lock's default TTL, so fencing does not make a dead worker's lock outlive it.
CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 15.0
# Local work between the fence check and the request leaving (microseconds), and Redis'
# TTL running on its own clock.
FENCE_MARGIN_SECONDS = 2.0
MUTATION_BUDGET_SECONDS = CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS + FENCE_MARGIN_SECONDS


def is_mutating(action: str) -> bool:
    """AWS's own split (and its throttling buckets'): everything but Describe/Get/List."""
    return not action.startswith(("Describe", "Get", "List"))


def make_client(region: str, endpoint_url: str | None, *, pool_size: int = 50) -> Any:
    """A thread-safe boto3 EC2 client with retries off (vpcnet retries, not botocore)."""
    session = boto3.session.Session()
    kwargs: dict[str, Any] = {}
    if endpoint_url and session.get_credentials() is None:
        # The emulator accepts any key; real AWS never takes this branch.
        kwargs = {"aws_access_key_id": "vpcnet", "aws_secret_access_key": "vpcnet"}
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},  # no botocore retries at all
        max_pool_connections=pool_size,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )
    return session.client(
        "ec2", region_name=region, endpoint_url=endpoint_url, config=config, **kwargs
    )


def translate(e: botocore.exceptions.ClientError) -> Ec2Error:
    err = e.response.get("Error", {})
    code = str(err.get("Code", "Unknown"))
    message = str(err.get("Message", ""))
    status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
    if code in _THROTTLE or code in _TEMPORARY or status >= 500:
        return Ec2TemporaryError(code, message)
    return Ec2PermanentError(code, message)


def _tags(raw: Sequence[Mapping[str, Any]] | None) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in raw or ()}


def eni_from_sdk(d: Mapping[str, Any]) -> EniView:
    ips: list[IPv4] = []
    primary = ipaddress.IPv4Address(d["PrivateIpAddress"])
    for a in d.get("PrivateIpAddresses", ()):
        ip = ipaddress.IPv4Address(a["PrivateIpAddress"])
        if not a.get("Primary") and ip != primary:
            ips.append(ip)
    att = d.get("Attachment") or {}
    device_index = att.get("DeviceIndex")
    return EniView(
        eni_id=d["NetworkInterfaceId"],
        mac=str(d.get("MacAddress", "")).lower(),
        subnet_id=d.get("SubnetId", ""),
        primary_ip=primary,
        ips=tuple(ips),
        prefixes=tuple(ipaddress.IPv4Network(p["Ipv4Prefix"]) for p in d.get("Ipv4Prefixes", ())),
        security_groups=tuple(g["GroupId"] for g in d.get("Groups", ())),
        status=str(d.get("Status", "in-use" if att else "available")),
        device_index=int(device_index) if device_index is not None else None,
        attachment_id=att.get("AttachmentId"),
        instance_id=att.get("InstanceId"),
        delete_on_termination=bool(att.get("DeleteOnTermination", False)),
        tags=_tags(d.get("TagSet")),
        description=str(d.get("Description", "")),
        ipv6_addresses=tuple(
            ipaddress.IPv6Address(a["Ipv6Address"]) for a in d.get("Ipv6Addresses", ())
        ),
        ipv6_prefixes=tuple(
            ipaddress.IPv6Network(p["Ipv6Prefix"]) for p in d.get("Ipv6Prefixes", ())
        ),
    )


def instance_from_sdk(d: Mapping[str, Any]) -> InstanceView:
    enis = tuple(
        sorted(
            (eni_from_sdk(n) for n in d.get("NetworkInterfaces", ())),
            key=lambda e: e.device_index if e.device_index is not None else 1 << 20,
        )
    )
    ip = d.get("PrivateIpAddress")
    return InstanceView(
        instance_id=d["InstanceId"],
        instance_type=d["InstanceType"],
        availability_zone=d.get("Placement", {}).get("AvailabilityZone", ""),
        state=d.get("State", {}).get("Name", "unknown"),
        subnet_id=d.get("SubnetId", ""),
        vpc_id=d.get("VpcId", ""),
        primary_ip=ipaddress.IPv4Address(ip) if ip else None,
        security_groups=tuple(g["GroupId"] for g in d.get("SecurityGroups", ())),
        enis=enis,
    )


def _subnet_ipv6_cidr(d: Mapping[str, Any]) -> IPv6Net | None:
    """The subnet's associated IPv6 /64 (an association being made or removed is not one)."""
    for assoc in d.get("Ipv6CidrBlockAssociationSet", ()):
        if assoc.get("Ipv6CidrBlockState", {}).get("State") == "associated":
            return ipaddress.IPv6Network(assoc["Ipv6CidrBlock"])
    return None


def subnet_from_sdk(d: Mapping[str, Any]) -> SubnetView:
    return SubnetView(
        subnet_id=d["SubnetId"],
        cidr=ipaddress.IPv4Network(d["CidrBlock"]),
        availability_zone=d.get("AvailabilityZone", ""),
        available_ips=int(d.get("AvailableIpAddressCount", 0)),
        vpc_id=d.get("VpcId", ""),
        tags=_tags(d.get("Tags")),
        ipv6_cidr=_subnet_ipv6_cidr(d),
    )


def _ipv6_per_eni(net: Mapping[str, Any]) -> int | None:
    """EC2's Ipv6AddressesPerInterface (0 where the type has no IPv6; None: not listed)."""
    if net.get("Ipv6Supported") is False:
        return 0
    raw = net.get("Ipv6AddressesPerInterface")
    return int(raw) if raw is not None else None


def _default_vcpus(instance_type: Mapping[str, Any]) -> int | None:
    """EC2's VCpuInfo.DefaultVCpus (None: not listed)."""
    raw = (instance_type.get("VCpuInfo") or {}).get("DefaultVCpus")
    return int(raw) if raw is not None else None


def _fence_for(action: str) -> Fence | None:
    if not is_mutating(action):
        return None
    fence = current_fence()
    if fence is None:
        # A bug, not a condition: a mutation outside any lock could race another pass.
        raise Ec2PermanentError("VpcnetUnfenced", f"{action} called outside a lock's fence")
    return fence


class Ec2:
    """vpcnet's EC2 operations, each one call through the limiter (unless paginated)."""

    def __init__(
        self,
        client: Any,
        limiter: RateLimiter | None,
        recorder: CallRecorder | None,
        *,
        throttle_retries: int = 10,
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._recorder = recorder
        self._throttle_retries = throttle_retries

    # -- the choke point -------------------------------------------------------------

    def call(self, action: str, **params: Any) -> dict[str, Any]:
        method = getattr(self._client, xform_name(action))
        fence = _fence_for(action)
        for _ in range(self._throttle_retries + 1):
            waited = self._limiter.acquire(action) if self._limiter else 0.0
            if fence is not None:
                # After the limiter's wait (which may be long), right before the call:
                # raises LockHeld once the pass's lock is lost, so nothing more is sent.
                fence.fence(MUTATION_BUDGET_SECONDS)
            start = time.monotonic()
            try:
                resp: dict[str, Any] = method(**params)
            except botocore.exceptions.ClientError as e:
                err = translate(e)
                throttled = err.code in _THROTTLE
                self._record(action, start, waited, throttled=throttled, error=err.code)
                if not throttled:
                    raise err from e
                if self._limiter:
                    self._limiter.drain(action)  # our bucket was fuller than AWS's
                continue
            except _CONNECTION_ERRORS as e:
                self._record(action, start, waited, error="ConnectionError")
                if fence is not None:
                    # Sent, maybe, and EC2 may still act on it after our timeout: the
                    # lock must outlast that too, so no other pass acts meanwhile.
                    fence.linger(MUTATION_BUDGET_SECONDS)
                raise Ec2TemporaryError("ConnectionError", f"{action}: {e}") from e
            self._record(action, start, waited)
            return resp
        raise Ec2TemporaryError("RequestLimitExceeded", f"{action} throttled persistently", delay=5.0)

    def _record(self, action: str, start: float, waited: float, *, throttled: bool = False,
                error: str | None = None) -> None:
        seconds = time.monotonic() - start
        record_ec2_call(action, seconds=seconds, waited=waited, throttled=throttled, error=error)
        if self._recorder:
            self._recorder.record(action, seconds=seconds, waited=waited,
                                  throttled=throttled, error=error)

    def _pages(self, action: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            page = self.call(action, **params, **({"NextToken": token} if token else {}))
            yield from page.get(key, ())
            token = page.get("NextToken")
            if not token:
                return

    # -- reads -----------------------------------------------------------------------

    def describe_instance(self, instance_id: str) -> InstanceView | None:
        """The instance with its attached ENIs, or None if EC2 does not know it."""
        try:
            resp = self.call("DescribeInstances", InstanceIds=[instance_id])
        except Ec2PermanentError as e:
            if e.code in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                return None
            raise
        for r in resp.get("Reservations", ()):
            for i in r.get("Instances", ()):
                if i.get("InstanceId") == instance_id:
                    return instance_from_sdk(i)
        return None

    def describe_instances(self, instance_ids: Sequence[str]) -> dict[str, InstanceView]:
        """Many instances in few calls; ids EC2 does not know are simply absent.

        Filters (not InstanceIds) so one unknown id does not fail the whole batch.
        """
        out: dict[str, InstanceView] = {}
        ids = sorted(set(instance_ids))
        for i in range(0, len(ids), 200):  # AWS caps the values of one filter
            flt = [{"Name": "instance-id", "Values": ids[i : i + 200]}]
            for r in self._pages("DescribeInstances", "Reservations", Filters=flt, MaxResults=1000):
                for inst in r.get("Instances", ()):
                    view = instance_from_sdk(inst)
                    out[view.instance_id] = view
        return out

    def describe_instance_type(self, instance_type: str) -> InstanceLimits | None:
        """ENI limits from EC2, or None if EC2 does not know the type."""
        try:
            resp = self.call("DescribeInstanceTypes", InstanceTypes=[instance_type])
        except Ec2PermanentError as e:
            if e.code in ("InvalidInstanceType", "InvalidParameterValue"):
                return None
            raise
        for t in resp.get("InstanceTypes", ()):
            net = t.get("NetworkInfo", {})
            if t.get("InstanceType") == instance_type and net.get("MaximumNetworkInterfaces"):
                return InstanceLimits(
                    instance_type=instance_type,
                    max_enis=int(net["MaximumNetworkInterfaces"]),
                    ipv4_per_eni=int(net["Ipv4AddressesPerInterface"]),
                    hypervisor=str(t.get("Hypervisor", "")),
                    ipv6_per_eni=_ipv6_per_eni(net),
                    vcpus=_default_vcpus(t),
                )
        return None

    def describe_subnets(
        self, subnet_ids: Sequence[str] = (), filters: Mapping[str, Sequence[str]] | None = None
    ) -> list[SubnetView]:
        params: dict[str, Any] = {}
        if subnet_ids:
            params["SubnetIds"] = list(subnet_ids)
        if filters:
            params["Filters"] = [{"Name": k, "Values": list(v)} for k, v in filters.items()]
        return [subnet_from_sdk(s) for s in self.call("DescribeSubnets", **params).get("Subnets", ())]

    def describe_enis(self, filters: Mapping[str, Sequence[str]]) -> list[EniView]:
        flt = [{"Name": k, "Values": list(v)} for k, v in filters.items()]
        return [
            eni_from_sdk(d)
            for d in self._pages("DescribeNetworkInterfaces", "NetworkInterfaces",
                                 Filters=flt, MaxResults=1000)
        ]

    # -- writes ----------------------------------------------------------------------

    def create_eni(
        self,
        *,
        subnet_id: str,
        security_groups: Sequence[str],
        ip_count: int,
        prefix_count: int,
        client_token: str,
        description: str,
        tags: Mapping[str, str],
    ) -> EniView:
        """Create an ENI with its addresses and tags in one call (idempotent by token)."""
        params: dict[str, Any] = {
            "SubnetId": subnet_id,
            "Groups": list(security_groups),
            "Description": description,
            "ClientToken": client_token,
            "TagSpecifications": [
                {
                    "ResourceType": "network-interface",
                    "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
                }
            ],
        }
        if ip_count:
            params["SecondaryPrivateIpAddressCount"] = ip_count
        if prefix_count:
            params["Ipv4PrefixCount"] = prefix_count
        return eni_from_sdk(self.call("CreateNetworkInterface", **params)["NetworkInterface"])

    def attach_eni(self, eni_id: str, instance_id: str, device_index: int) -> str:
        resp = self.call(
            "AttachNetworkInterface",
            NetworkInterfaceId=eni_id, InstanceId=instance_id, DeviceIndex=device_index,
        )
        return str(resp["AttachmentId"])

    def set_delete_on_termination(self, eni_id: str, attachment_id: str) -> None:
        self.call(
            "ModifyNetworkInterfaceAttribute",
            NetworkInterfaceId=eni_id,
            Attachment={"AttachmentId": attachment_id, "DeleteOnTermination": True},
        )

    def assign_ips(self, eni_id: str, count: int) -> tuple[IPv4, ...]:
        resp = self.call(
            "AssignPrivateIpAddresses", NetworkInterfaceId=eni_id,
            SecondaryPrivateIpAddressCount=count,
        )
        return tuple(
            ipaddress.IPv4Address(a["PrivateIpAddress"])
            for a in resp.get("AssignedPrivateIpAddresses", ())
        )

    def assign_prefixes(self, eni_id: str, count: int) -> tuple[IPv4Net, ...]:
        resp = self.call("AssignPrivateIpAddresses", NetworkInterfaceId=eni_id, Ipv4PrefixCount=count)
        return tuple(
            ipaddress.IPv4Network(p["Ipv4Prefix"]) for p in resp.get("AssignedIpv4Prefixes", ())
        )

    def unassign_ips(self, eni_id: str, ips: Sequence[IPv4]) -> None:
        self.call(
            "UnassignPrivateIpAddresses", NetworkInterfaceId=eni_id,
            PrivateIpAddresses=[str(i) for i in ips],
        )

    def unassign_prefixes(self, eni_id: str, prefixes: Sequence[IPv4Net]) -> None:
        self.call(
            "UnassignPrivateIpAddresses", NetworkInterfaceId=eni_id,
            Ipv4Prefixes=[str(p) for p in prefixes],
        )

    def assign_ipv6_prefixes(self, eni_id: str, count: int) -> tuple[IPv6Net, ...]:
        """``count`` new /80 prefixes on the ENI (AssignIpv6Addresses, Ipv6PrefixCount)."""
        resp = self.call("AssignIpv6Addresses", NetworkInterfaceId=eni_id, Ipv6PrefixCount=count)
        return tuple(ipaddress.IPv6Network(p) for p in resp.get("AssignedIpv6Prefixes", ()))

    def unassign_ipv6_prefixes(self, eni_id: str, prefixes: Sequence[IPv6Net]) -> None:
        self.call(
            "UnassignIpv6Addresses", NetworkInterfaceId=eni_id,
            Ipv6Prefixes=[str(p) for p in prefixes],
        )

    def detach_eni(self, attachment_id: str, *, force: bool = False) -> None:
        """Idempotent: an attachment that is already gone is fine."""
        try:
            self.call("DetachNetworkInterface", AttachmentId=attachment_id, Force=force)
        except Ec2PermanentError as e:
            if e.code not in ("InvalidAttachmentID.NotFound", "IncorrectState"):
                raise

    def delete_eni(self, eni_id: str) -> bool:
        """Idempotent: True if deleted now, False if it was already gone."""
        try:
            self.call("DeleteNetworkInterface", NetworkInterfaceId=eni_id)
        except Ec2PermanentError as e:
            if e.code == "InvalidNetworkInterfaceID.NotFound":
                return False
            raise
        return True
