"""An allocation waits for an IP that is coming (cooldown ending, the pool growing), in
arrival order, reports the waiting as demand, and fails at once when none can come."""

from __future__ import annotations

import ipaddress
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from vpcnet.agent.ipam import Allocation, AttachmentKey, Ipam
from vpcnet.domain import EniRecord
from vpcnet.errors import PoolExhausted

IP = ipaddress.IPv4Address
LIMITS = "ENI and IP limits reached: 3 of 3 ENIs attached"


def eni(ips: list[str]) -> EniRecord:
    return EniRecord(
        eni_id="eni-0", mac="02:00:00:00:00:00", device_index=0, subnet_id="subnet-1",
        subnet_cidr=ipaddress.IPv4Network("10.0.0.0/16"), primary_ip=IP("10.0.0.10"),
        ips=tuple(IP(i) for i in ips), is_primary=True,
    )


def key(n: int) -> AttachmentKey:
    return AttachmentKey(f"c{n}", "eth0")


def wait_until(predicate: object, what: str) -> None:
    done = threading.Event()
    for _ in range(2000):
        if callable(predicate) and predicate():
            return
        done.wait(0.005)
    raise AssertionError(f"never: {what}")


def test_an_add_inside_the_cooldown_gets_the_ip_that_leaves_it() -> None:
    pool = Ipam(cooldown_seconds=0.2)
    pool.set_enis([eni(["10.0.0.5"])])
    first = pool.allocate(key(1))
    pool.release(key(1))
    # Nothing free, one IP cooling down: waiting (within 30 s) gets it once it is reusable.
    got = pool.allocate(key(2), wait=30.0)
    assert got.ip == first.ip and pool.stats().cooldown == 0


def test_nothing_coming_fails_at_once_saying_why() -> None:
    pool = Ipam(cooldown_seconds=600.0)
    pool.set_enis([eni(["10.0.0.5", "10.0.0.6"])])
    pool.allocate(key(1))
    pool.allocate(key(2))
    pool.release(key(2))  # cooling down for 10 minutes: beyond any ADD's budget
    with pytest.raises(PoolExhausted) as e:
        pool.allocate(key(3), wait=30.0, can_grow=lambda: LIMITS)
    assert LIMITS in str(e.value) and "1 cooling down, 1 assigned" in str(e.value)
    assert pool.demand == 0 and pool.outlook(30.0, lambda: LIMITS).endswith(LIMITS)


def test_waiters_are_served_in_order_and_counted_as_demand() -> None:
    pool = Ipam(cooldown_seconds=30.0)
    pool.set_enis([eni(["10.0.0.5"])])
    pool.allocate(key(0))
    seen: list[int] = []
    pool.add_demand_listener(seen.append)
    with ThreadPoolExecutor(3) as ex:
        futures: list[Future[Allocation]] = []
        for n in (1, 2, 3):  # each one waiting before the next arrives
            futures.append(ex.submit(pool.allocate, key(n), wait=60.0, can_grow=lambda: ""))
            wait_until(lambda n=n: pool.demand == n, f"{n} waiting")
        assert pool.outlook(30.0, lambda: "") == ""  # STATUS: an ADD now would wait and get one
        # The control plane grows the pool by two: the first two in line get them.
        pool.set_enis([eni(["10.0.0.5", "10.0.0.7", "10.0.0.6"])])
        # (which of the two new IPs each of them gets is the pool's choice, not the line's)
        assert {futures[0].result(10).ip, futures[1].result(10).ip} == {IP("10.0.0.6"), IP("10.0.0.7")}
        wait_until(lambda: pool.demand == 1, "one still waiting")
        pool.set_enis([eni(["10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8"])])
        assert futures[2].result(10).ip == IP("10.0.0.8")
    assert seen[:3] == [1, 2, 3] and seen[-1] == 0 and pool.demand == 0


def test_a_waiter_gives_up_at_its_deadline_and_leaves_the_line() -> None:
    pool = Ipam(cooldown_seconds=30.0)
    pool.set_enis([eni(["10.0.0.5"])])
    pool.allocate(key(0))
    with pytest.raises(PoolExhausted, match="within the ADD's budget"):
        pool.allocate(key(1), wait=0.05, can_grow=lambda: "")
    assert pool.demand == 0
    pool.set_enis([eni(["10.0.0.5", "10.0.0.6"])])
    assert pool.allocate(key(2)).ip == IP("10.0.0.6")  # no ghost waiter ahead of it


def test_the_growth_outlook_turning_hopeless_ends_the_wait() -> None:
    pool = Ipam(cooldown_seconds=30.0)
    pool.set_enis([eni(["10.0.0.5"])])
    pool.allocate(key(0))
    blocker = [""]
    with ThreadPoolExecutor(1) as ex:
        waiting = ex.submit(pool.allocate, key(1), wait=3600.0, can_grow=lambda: blocker[0])
        wait_until(lambda: pool.demand == 1, "waiting")
        blocker[0] = LIMITS  # the control plane's pass found the node at its limits
        pool.poke()
        with pytest.raises(PoolExhausted, match="ENI and IP limits reached"):
            waiting.result(10)


def test_the_demand_is_the_shortfall_that_the_free_ips_do_not_cover() -> None:
    """IPs arriving for waiting ADDs take them out of the demand at once, before the
    waiters wake to take them: the mirror never reports (and publishes) a demand the
    pool already covers, which would send a provisioning pass for nothing or have it
    assign those ADDs' IPs a second time."""
    pool = Ipam(cooldown_seconds=30.0)
    pool.set_enis([eni(["10.0.0.5"])])
    pool.allocate(key(0))
    seen: list[int] = []
    pool.add_demand_listener(seen.append)  # called under the pool's lock, in order
    with ThreadPoolExecutor(3) as ex:
        futures: list[Future[Allocation]] = []
        for n in (1, 2, 3):
            futures.append(ex.submit(pool.allocate, key(n), wait=60.0, can_grow=lambda: ""))
            wait_until(lambda n=n: pool.demand == n, f"{n} waiting")
        # Two IPs come: one ADD is left short, whichever order the waiters wake in.
        pool.set_enis([eni(["10.0.0.5", "10.0.0.6", "10.0.0.7"])])
        assert {futures[0].result(10).ip, futures[1].result(10).ip} == {IP("10.0.0.6"), IP("10.0.0.7")}
        assert pool.demand_report() == (1, 3)
        pool.set_enis([eni(["10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8"])])
        assert futures[2].result(10).ip == IP("10.0.0.8")
    assert seen == [1, 2, 3, 1, 0]  # never 2: the two covered ADDs were not demand
    assert pool.demand == 0
