"""The node's two pools (IPv4 ``Ipam``, IPv6 ``Ipam6``) as one checkpoint source. Pure.

The checkpoint payload is the IPv4 pool's (unchanged, so an older agent still reads
it) with an ``ipv6`` section added; a payload without that section (written before
IPv6 support) loads as an empty IPv6 pool. The /80s are not stored twice: they are
re-read from the ENI records of the IPv4 section.

``released_in`` reads back what a payload holds as confirmed released (both families):
``release-ok`` may name those only once that payload is on disk.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from vpcnet.agent.ipam import Ipam
from vpcnet.agent.ipam6 import Ipam6
from vpcnet.domain import IPv4, IPv6Net
from vpcnet.errors import CheckpointError

IPV6_SECTION = "ipv6"


class Released(NamedTuple):
    """Confirmed for release to EC2, out of the pool: IPv4 IPs and /80s."""

    ips: frozenset[IPv4] = frozenset()
    prefixes: frozenset[IPv6Net] = frozenset()


def released_in(payload: Mapping[str, Any] | None) -> Released:
    """What ``payload`` (``NodePools.snapshot``'s) holds as released; nothing for None."""
    if payload is None:
        return Released()
    section = payload.get(IPV6_SECTION) or {}
    return Released(
        frozenset(ipaddress.IPv4Address(ip) for ip in payload["released"]),
        frozenset(ipaddress.IPv6Network(p) for p in section.get("released", ())),
    )


class NodePools:
    def __init__(self, ipam: Ipam, ipam6: Ipam6) -> None:
        self.ipam = ipam
        self.ipam6 = ipam6

    @property
    def generation(self) -> int:
        # Both only grow: the sum grows on every change of either.
        return self.ipam.generation + self.ipam6.generation

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        """(generation, payload): each part is taken atomically with its own generation,
        so the sum never claims a change the payload lacks."""
        generation4, payload = self.ipam.snapshot()
        generation6, section = self.ipam6.snapshot()
        return generation4 + generation6, {**payload, IPV6_SECTION: section}

    @classmethod
    def from_checkpoint(
        cls,
        data: Mapping[str, Any],
        cooldown_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> NodePools:
        ipam = Ipam.from_checkpoint(data, cooldown_seconds=cooldown_seconds, clock=clock)
        section = data.get(IPV6_SECTION)
        if section is not None and not isinstance(section, Mapping):
            raise CheckpointError("malformed IPv6 checkpoint: not an object")
        return cls(ipam, Ipam6.from_checkpoint(section, ipam.enis(), clock))
