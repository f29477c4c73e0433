"""Emulator options: latency, attachment delays, throttling. Presets ``fast`` and ``aws``.

The ``aws`` preset uses typical in-region EC2 latencies (assumed figures, not a
measurement; jitter +-30 %): CreateNetworkInterface ~0.3 s, AttachNetworkInterface ~0.3 s for the call and
~2 s more until the attachment reads ``attached``, DetachNetworkInterface ~0.3 s plus
~1 s until the ENI is ``available`` again, DeleteNetworkInterface ~0.2 s,
Assign/UnassignPrivateIpAddresses and Assign/UnassignIpv6Addresses ~0.2 s, ModifyNetworkInterfaceAttribute and CreateTags
~0.15 s, Describe* ~0.1 s, other mutating calls ~0.2 s. ``fast`` is all zeros.
Throttling is independent of the preset and on by default, as on AWS.

IPv6: every VPC ``bootstrap_vpc`` makes gets a /56 (from 2001:db8::/32) and each of its
subnets a /64 of it, except the subnets whose IPv4 CIDR ``ipv4_only_subnets`` names.

``time_scaled(K)`` runs the emulated clock K times faster: every latency and attachment
delay divided by K, every token bucket refilling K times faster (``time_scale``). A
benchmark can then run a storm of AWS's shape in 1/K of the time; vpcnet's own overhead
is not scaled, so a ratio measured that way is conservative.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from vpcnet.aws.buckets import Bucket


@dataclass(frozen=True, slots=True)
class Latency:
    seconds: float = 0.0
    jitter: float = 0.0  # +- fraction of ``seconds``, uniformly drawn

    def sample(self, rng: random.Random) -> float:
        if self.seconds <= 0:
            return 0.0
        if not self.jitter:
            return self.seconds
        return max(0.0, self.seconds * (1.0 + rng.uniform(-self.jitter, self.jitter)))


_AWS_JITTER = 0.3
_AWS_LATENCY: Mapping[str, Latency] = {
    "CreateNetworkInterface": Latency(0.3, _AWS_JITTER),
    "AttachNetworkInterface": Latency(0.3, _AWS_JITTER),
    "DetachNetworkInterface": Latency(0.3, _AWS_JITTER),
    "DeleteNetworkInterface": Latency(0.2, _AWS_JITTER),
    "AssignPrivateIpAddresses": Latency(0.2, _AWS_JITTER),
    "UnassignPrivateIpAddresses": Latency(0.2, _AWS_JITTER),
    "AssignIpv6Addresses": Latency(0.2, _AWS_JITTER),
    "UnassignIpv6Addresses": Latency(0.2, _AWS_JITTER),
    "ModifyNetworkInterfaceAttribute": Latency(0.15, _AWS_JITTER),
    "CreateTags": Latency(0.15, _AWS_JITTER),
    "DeleteTags": Latency(0.15, _AWS_JITTER),
}

PRESETS = ("fast", "aws")


@dataclass(frozen=True, slots=True)
class Ec2SimConfig:
    region: str = "us-east-1"
    account_id: str = "123456789012"
    preset: str = "fast"  # the latency preset these values came from (informational)
    latency: Mapping[str, Latency] = field(default_factory=dict)  # per action
    describe_latency: Latency = Latency()  # Describe*/Get*/List* not in ``latency``
    mutating_latency: Latency = Latency()  # every other action not in ``latency``
    attach_delay: float = 0.0  # seconds an attachment reads "attaching"
    detach_delay: float = 0.0  # seconds an attachment reads "detaching"
    throttle: bool = True
    bucket_overrides: Mapping[str, Bucket] = field(default_factory=dict)
    seed: int | None = None  # for jitter and fault draws
    time_scale: float = 1.0  # >1: the emulated clock runs this many times faster
    # IPv4 CIDRs of the subnets bootstrap_vpc makes without an IPv6 /64 (IPv4-only)
    ipv4_only_subnets: tuple[str, ...] = ()

    def time_scaled(self, k: float) -> Ec2SimConfig:
        """Latencies and delays divided by ``k``, buckets refilling ``k`` times faster."""
        if k <= 0:
            raise ValueError(f"time scale must be positive, not {k}")

        def lat(x: Latency) -> Latency:
            return Latency(x.seconds / k, x.jitter)

        return replace(
            self,
            latency={a: lat(v) for a, v in self.latency.items()},
            describe_latency=lat(self.describe_latency),
            mutating_latency=lat(self.mutating_latency),
            attach_delay=self.attach_delay / k,
            detach_delay=self.detach_delay / k,
            time_scale=self.time_scale * k,
        )

    @classmethod
    def fast(cls, **changes: Any) -> Ec2SimConfig:
        return cls(**changes)

    @classmethod
    def aws_like(cls, **changes: Any) -> Ec2SimConfig:
        values: dict[str, Any] = {
            "preset": "aws",
            "latency": dict(_AWS_LATENCY),
            "describe_latency": Latency(0.1, _AWS_JITTER),
            "mutating_latency": Latency(0.2, _AWS_JITTER),
            "attach_delay": 2.0,
            "detach_delay": 1.0,
        }
        values.update(changes)
        return cls(**values)

    @classmethod
    def preset_named(cls, name: str, **changes: Any) -> Ec2SimConfig:
        if name == "fast":
            return cls.fast(**changes)
        if name == "aws":
            return cls.aws_like(**changes)
        raise ValueError(f"unknown latency preset {name!r} (expected one of {PRESETS})")

    def latency_for(self, action: str) -> Latency:
        lat = self.latency.get(action)
        if lat is not None:
            return lat
        if action.startswith(("Describe", "Get", "List")):
            return self.describe_latency
        return self.mutating_latency

    def with_(self, **changes: Any) -> Ec2SimConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "preset": self.preset,
            "latency": {k: [v.seconds, v.jitter] for k, v in self.latency.items()},
            "describe_latency": [self.describe_latency.seconds, self.describe_latency.jitter],
            "mutating_latency": [self.mutating_latency.seconds, self.mutating_latency.jitter],
            "attach_delay": self.attach_delay,
            "detach_delay": self.detach_delay,
            "throttle": self.throttle,
            "time_scale": self.time_scale,
            "ipv4_only_subnets": list(self.ipv4_only_subnets),
            "bucket_overrides": {
                k: [b.capacity, b.refill_per_second] for k, b in self.bucket_overrides.items()
            },
        }
