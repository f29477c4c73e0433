"""Instance-type ENI/IP limits: the bundled fallback table, capacity arithmetic, resolution.

Where limits come from, in order: the Redis cache (filled once per type), EC2's
``DescribeInstanceTypes``, then the table bundled in ``vpcnet/data/instance_types.json``
(so a throttled or partitioned EC2 API never blocks a join for a common type). Pure: the
cache and EC2 are passed in as callables by the control plane.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from importlib import resources

from vpcnet.domain import InstanceLimits, IpFamily, Mode
from vpcnet.errors import TemporaryError, UnknownInstanceTypeError

PREFIX_SIZE = 16  # a delegated /28 gives 16 addresses and occupies one IPv4 slot of the ENI
# The kubelet-style cap the AWS VPC CNI's max-pods calculator applies when addresses do
# not bound the pods (prefix delegation, IPv6): 110 below 30 vCPUs, 250 from 30 on.
SMALL_NODE_MAX_PODS, LARGE_NODE_MAX_PODS, LARGE_NODE_VCPUS = 110, 250, 30


@functools.cache
def bundled_table() -> Mapping[str, InstanceLimits]:
    raw = resources.files("vpcnet").joinpath("data/instance_types.json").read_text("utf-8")
    table = json.loads(raw)["instance_types"]
    return {
        name: InstanceLimits(
            instance_type=name,
            max_enis=int(row["max_enis"]),
            ipv4_per_eni=int(row["ipv4_per_eni"]),
            hypervisor=str(row.get("hypervisor", "nitro")),
            vcpus=int(row["vcpus"]) if row.get("vcpus") is not None else None,
        )
        for name, row in table.items()
    }


def bundled_limits(instance_type: str) -> InstanceLimits | None:
    return bundled_table().get(instance_type)


def limits_to_json(limits: InstanceLimits) -> str:
    return json.dumps(
        {
            "instance_type": limits.instance_type,
            "max_enis": limits.max_enis,
            "ipv4_per_eni": limits.ipv4_per_eni,
            "hypervisor": limits.hypervisor,
            "ipv6_per_eni": limits.ipv6_per_eni,
            "vcpus": limits.vcpus,
        },
        sort_keys=True,
    )


def limits_from_json(raw: str | bytes) -> InstanceLimits:
    d = json.loads(raw)
    return InstanceLimits(
        instance_type=d["instance_type"],
        max_enis=int(d["max_enis"]),
        ipv4_per_eni=int(d["ipv4_per_eni"]),
        hypervisor=str(d.get("hypervisor", "nitro")),
        # Absent from entries cached before IPv6 support: not known.
        ipv6_per_eni=int(d["ipv6_per_eni"]) if d.get("ipv6_per_eni") is not None else None,
        vcpus=int(d["vcpus"]) if d.get("vcpus") is not None else None,  # likewise
    )


def slots_per_eni(limits: InstanceLimits) -> int:
    """IPv4 slots an ENI offers to pods: every address but the ENI's own primary."""
    return max(limits.ipv4_per_eni - 1, 0)


def max_pod_ips(limits: InstanceLimits, mode: Mode) -> int:
    """The most pod addresses a node of this type can hold in ``mode``."""
    slots = limits.max_enis * slots_per_eni(limits)
    return slots * PREFIX_SIZE if mode is Mode.PREFIX else slots


def ipv6_max_pods(vcpus: int | None) -> int:
    """Pods an IPv6 node can run: one /80 is 2**48 addresses, so the bound is the
    kubelet-style cap, by vCPUs (``InstanceLimits.vcpus``). Without a vCPU count (None:
    a type EC2 did not describe with one, a cache entry older than the field) the cap is
    the small nodes' 110."""
    if vcpus is not None and vcpus >= LARGE_NODE_VCPUS:
        return LARGE_NODE_MAX_PODS
    return SMALL_NODE_MAX_PODS


def max_pods(limits: InstanceLimits, mode: Mode, family: IpFamily, vcpus: int | None = None) -> int:
    """The most pods a node of this type can run in ``mode`` and ``family``: ipv4, its
    pod addresses (:func:`max_pod_ips`); ipv6, :func:`ipv6_max_pods`; dual (each pod
    takes one of each), the smaller of the two. ``vcpus`` overrides ``limits.vcpus``."""
    ipv4 = max_pod_ips(limits, mode)
    ipv6 = ipv6_max_pods(limits.vcpus if vcpus is None else vcpus)
    if family is IpFamily.IPV4:
        return ipv4
    if family is IpFamily.IPV6:
        return ipv6
    return min(ipv4, ipv6)


def resolve_limits(
    instance_type: str,
    *,
    cached: Callable[[str], InstanceLimits | None],
    describe: Callable[[str], InstanceLimits | None],
    store: Callable[[InstanceLimits], None],
) -> InstanceLimits:
    """Limits for ``instance_type``: cache, then EC2 (stored in the cache), then the table.

    ``describe`` returns None when EC2 does not know the type and raises TemporaryError
    when EC2 cannot answer now; in both cases the bundled table is the fallback, and a
    type nobody knows is a permanent error.
    """
    hit = cached(instance_type)
    if hit is not None:
        return hit
    try:
        described = describe(instance_type)
    except TemporaryError:
        fallback = bundled_limits(instance_type)
        if fallback is None:
            raise
        return fallback  # not cached: the next resolution asks EC2 again
    if described is not None:
        store(described)
        return described
    fallback = bundled_limits(instance_type)
    if fallback is None:
        raise UnknownInstanceTypeError(f"no ENI/IP limits known for instance type {instance_type!r}")
    store(fallback)
    return fallback
