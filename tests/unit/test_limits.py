"""Bundled instance-type limits and their resolution order (cache, EC2, table)."""

from __future__ import annotations

import pytest

from vpcnet.domain import InstanceLimits, Mode
from vpcnet.errors import Ec2TemporaryError, UnknownInstanceTypeError
from vpcnet.limits import (
    bundled_limits,
    bundled_table,
    limits_from_json,
    limits_to_json,
    max_pod_ips,
    resolve_limits,
)


@pytest.mark.parametrize(
    ("itype", "enis", "ips"),
    [("t3.nano", 2, 2), ("m5.large", 3, 10), ("m5.xlarge", 4, 15), ("c5.18xlarge", 15, 50),
     ("r5.24xlarge", 15, 50), ("t3.2xlarge", 4, 15)],
)
def test_bundled_table_has_the_documented_limits(itype: str, enis: int, ips: int) -> None:
    lim = bundled_limits(itype)
    assert lim is not None and (lim.max_enis, lim.ipv4_per_eni) == (enis, ips)


def test_bundled_table_covers_every_size_of_t3_m5_c5_r5() -> None:
    table = bundled_table()
    for fam, sizes in {
        "t3": ("nano", "micro", "small", "medium", "large", "xlarge", "2xlarge"),
        "m5": ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge"),
        "c5": ("large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "12xlarge", "18xlarge", "24xlarge"),
        "r5": ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge"),
    }.items():
        for size in sizes:
            assert f"{fam}.{size}" in table
    assert table["t2.micro"].hypervisor == "xen" and not table["t2.micro"].supports_prefixes
    assert table["m5.large"].supports_prefixes


def test_max_pod_ips_per_mode() -> None:
    lim = InstanceLimits("m5.xlarge", 4, 15)
    assert max_pod_ips(lim, Mode.FULL) == 4 * 14
    assert max_pod_ips(lim, Mode.PREFIX) == 4 * 14 * 16


def test_json_round_trip() -> None:
    lim = InstanceLimits("c5.large", 3, 10, "nitro")
    assert limits_from_json(limits_to_json(lim)) == lim


class Store:
    def __init__(self) -> None:
        self.data: dict[str, InstanceLimits] = {}

    def get(self, t: str) -> InstanceLimits | None:
        return self.data.get(t)

    def put(self, lim: InstanceLimits) -> None:
        self.data[lim.instance_type] = lim


def test_cache_hit_skips_ec2() -> None:
    store = Store()
    store.put(InstanceLimits("m5.large", 3, 10))

    def describe(t: str) -> InstanceLimits | None:
        raise AssertionError("EC2 must not be asked when the cache answers")

    assert resolve_limits("m5.large", cached=store.get, describe=describe, store=store.put).max_enis == 3


def test_ec2_answer_is_cached_and_wins_over_the_table() -> None:
    store = Store()
    calls: list[str] = []

    def describe(t: str) -> InstanceLimits | None:
        calls.append(t)
        return InstanceLimits(t, 5, 7)

    for _ in range(3):
        got = resolve_limits("m5.large", cached=store.get, describe=describe, store=store.put)
    assert (got.max_enis, got.ipv4_per_eni) == (5, 7)
    assert calls == ["m5.large"]


def test_table_is_the_fallback_when_ec2_cannot_answer() -> None:
    store = Store()

    def describe(t: str) -> InstanceLimits | None:
        raise Ec2TemporaryError("RequestLimitExceeded", "slow down")

    got = resolve_limits("m5.xlarge", cached=store.get, describe=describe, store=store.put)
    assert (got.max_enis, got.ipv4_per_eni) == (4, 15)
    assert store.data == {}  # not cached: EC2 is asked again next time
    with pytest.raises(Ec2TemporaryError):
        resolve_limits("x9.mega", cached=store.get, describe=describe, store=store.put)


def test_unknown_everywhere_is_permanent() -> None:
    store = Store()
    with pytest.raises(UnknownInstanceTypeError):
        resolve_limits("x9.mega", cached=store.get, describe=lambda t: None, store=store.put)
    got = resolve_limits("t3.nano", cached=store.get, describe=lambda t: None, store=store.put)
    assert got.max_enis == 2 and "t3.nano" in store.data
