"""The instance type's vCPUs in its limits: the bundled table (every type, moto's
catalogue numbers), the Redis cache JSON (kept; entries cached before the field load),
and the IPv6 max-pods cap they decide."""

from __future__ import annotations

import json

from moto.ec2.models.instance_types import INSTANCE_TYPES

from vpcnet.domain import InstanceLimits, IpFamily, Mode
from vpcnet.limits import (
    LARGE_NODE_MAX_PODS,
    SMALL_NODE_MAX_PODS,
    bundled_limits,
    bundled_table,
    limits_from_json,
    limits_to_json,
    max_pods,
)


def test_every_bundled_type_has_the_catalogues_vcpus() -> None:
    for name, lim in bundled_table().items():
        assert lim.vcpus == INSTANCE_TYPES[name]["VCpuInfo"]["DefaultVCpus"], name


def test_cache_json_keeps_vcpus_and_old_entries_load() -> None:
    lim = InstanceLimits("m5.8xlarge", 8, 30, "nitro", ipv6_per_eni=30, vcpus=32)
    assert limits_from_json(limits_to_json(lim)) == lim
    old = json.dumps({"instance_type": "m5.8xlarge", "max_enis": 8, "ipv4_per_eni": 30,
                      "hypervisor": "nitro", "ipv6_per_eni": 30})  # cached before vcpus
    assert limits_from_json(old).vcpus is None
    assert max_pods(limits_from_json(old), Mode.FULL, IpFamily.IPV6) == SMALL_NODE_MAX_PODS


def test_ipv6_max_pods_follows_the_types_vcpus() -> None:
    large, small = bundled_limits("m5.8xlarge"), bundled_limits("m5.4xlarge")
    assert large is not None and small is not None
    assert (large.vcpus, small.vcpus) == (32, 16)
    assert max_pods(large, Mode.FULL, IpFamily.IPV6) == LARGE_NODE_MAX_PODS
    assert max_pods(small, Mode.FULL, IpFamily.IPV6) == SMALL_NODE_MAX_PODS
    # dual: the smaller of the IPv4 addresses (8 ENIs x 29) and the IPv6 cap
    assert max_pods(large, Mode.FULL, IpFamily.DUAL) == min(8 * 29, LARGE_NODE_MAX_PODS)
    # an explicit vcpus argument still wins over the limits' own
    assert max_pods(large, Mode.FULL, IpFamily.IPV6, vcpus=2) == SMALL_NODE_MAX_PODS
