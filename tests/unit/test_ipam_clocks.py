"""The cooldown under clock steps (issue 11 finding 9): decided on the monotonic clock,
persisted as wall time, clamped on restore, and expired in deadline order."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from vpcnet.agent.ipam import AttachmentKey, Ipam
from vpcnet.domain import EniRecord
from vpcnet.errors import CheckpointError, PoolExhausted

IP = ipaddress.IPv4Address
COOLDOWN = 30.0
A, B, C = IP("10.0.0.1"), IP("10.0.0.2"), IP("10.0.0.3")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def enis() -> list[EniRecord]:
    return [
        EniRecord(
            eni_id="eni-0",
            mac="02:00:00:00:00:00",
            device_index=0,
            subnet_id="s",
            subnet_cidr=ipaddress.IPv4Network("10.0.0.0/16"),
            primary_ip=IP("10.0.0.200"),
            ips=(A, B, C),
            is_primary=True,
        )
    ]


def key(n: int) -> AttachmentKey:
    return AttachmentKey(f"c{n}", "eth0")


def test_a_backward_wall_step_blocks_no_ip_freed_after_it() -> None:
    wall, mono = Clock(1_000_000.0), Clock(50.0)
    ipam = Ipam(COOLDOWN, clock=wall, monotonic=mono)
    ipam.set_enis(enis())
    assert [ipam.allocate(key(n)).ip for n in range(3)] == [A, B, C]
    ipam.release(key(0))  # A, freed at wall 1_000_000
    wall.now -= 3600  # NTP (or a human) steps the clock back an hour
    ipam.release(key(1))  # B, freed "before" A by the wall clock
    mono.now += 29.9
    wall.now += 29.9
    with pytest.raises(PoolExhausted):
        ipam.allocate(key(3))
    mono.now += 0.1
    wall.now += 0.1
    assert {ipam.allocate(key(3)).ip, ipam.allocate(key(4)).ip} == {A, B}
    assert ipam.stats().cooldown == 0


def test_a_forward_wall_step_does_not_cut_the_cooldown_short() -> None:
    wall, mono = Clock(1_000_000.0), Clock(0.0)
    ipam = Ipam(COOLDOWN, clock=wall, monotonic=mono)
    ipam.set_enis(enis())
    for n in range(3):
        ipam.allocate(key(n))
    ipam.release(key(0))
    wall.now += 86_400
    with pytest.raises(PoolExhausted):
        ipam.allocate(key(3))
    # The mirror and the checkpoint keep the wall time the IP was freed.
    assert ipam.cooldown() == {A: 1_000_000.0}
    assert ipam.to_checkpoint()["cooldown"] == [[str(A), 1_000_000.0]]


def checkpoint_cooling(cooldown: list[list[Any]]) -> dict[str, Any]:
    pool = Ipam(COOLDOWN)
    pool.set_enis(enis())
    data = pool.to_checkpoint()
    data["cooldown"] = cooldown
    return data


def test_a_freed_time_in_the_future_cools_down_for_the_full_cooldown_at_most() -> None:
    """The wall clock stepped back while the agent was down: the restored cooldown is
    clamped to its length instead of lasting until the clock catches up (an hour)."""
    wall, mono = Clock(1_000_000.0), Clock(7.0)
    data = checkpoint_cooling([[str(A), wall.now + 3600]])
    ipam = Ipam.from_checkpoint(data, clock=wall, monotonic=mono)
    assert ipam.stats().cooldown == 1 and ipam.cooldown() == {A: wall.now}
    ipam.allocate(key(1))
    ipam.allocate(key(2))  # B and C
    mono.now += 29.9
    with pytest.raises(PoolExhausted):
        ipam.allocate(key(3))
    mono.now += 0.1
    assert ipam.allocate(key(3)).ip == A


def test_a_freed_time_in_the_future_is_clamped_with_the_real_clocks() -> None:
    # The same with only the wall clock injected (a zero cooldown: nothing to wait for).
    wall = Clock(1_000_000.0)
    ipam = Ipam.from_checkpoint(checkpoint_cooling([[str(A), wall.now + 3600]]), cooldown_seconds=0.0, clock=wall)
    assert {ipam.allocate(key(n)).ip for n in range(3)} == {A, B, C}


def test_restored_cooldowns_expire_by_their_own_time_not_by_list_order() -> None:
    wall = Clock(1_000_000.0)
    # B first in the list but freed later than A; A's cooldown is over, B's is not.
    data = checkpoint_cooling([[str(B), wall.now + 3600], [str(A), wall.now - COOLDOWN - 1]])
    ipam = Ipam.from_checkpoint(data, clock=wall)
    assert ipam.stats().cooldown == 1
    assert {ipam.allocate(key(1)).ip, ipam.allocate(key(2)).ip} == {A, C}
    with pytest.raises(PoolExhausted):
        ipam.allocate(key(3))


@pytest.mark.parametrize("freed_at", [float("nan"), float("inf")])
def test_a_non_finite_freed_time_is_a_corrupt_checkpoint(freed_at: float) -> None:
    with pytest.raises(CheckpointError):
        Ipam.from_checkpoint(checkpoint_cooling([[str(A), freed_at]]))
