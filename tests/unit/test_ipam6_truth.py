"""Invariants 4 and 7 for IPv6: after a store rollback the /80s need metadata's word,
and a running pod's IPv6 is never dropped (its /80 gone or not)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from vpcnet.agent.ipam import AttachmentKey
from vpcnet.agent.ipam6 import Ipam6
from vpcnet.agent.metadata import ImdsInterface
from vpcnet.agent.truth import corroborate, held_enis, resolve_enis
from vpcnet.domain import EniRecord

NET6 = ipaddress.IPv6Network
KEPT = NET6("2001:db8:0:1:a::/80")
STALE = NET6("2001:db8:0:1:b::/80")  # unassigned in EC2 since the store's old write

PRIMARY = EniRecord(
    eni_id="eni-0", mac="02:00:00:00:00:00", device_index=0, subnet_id="s",
    subnet_cidr=ipaddress.IPv4Network("10.0.0.0/20"), primary_ip=ipaddress.IPv4Address("10.0.0.10"),
    is_primary=True, ipv6_prefixes=(KEPT, STALE), subnet_ipv6_cidr=NET6("2001:db8:0:1::/64"),
)


def metadata(*prefixes: NET6) -> dict[str, ImdsInterface]:
    return {PRIMARY.mac: ImdsInterface(
        PRIMARY.mac, 0, PRIMARY.eni_id, "s", PRIMARY.subnet_cidr, (PRIMARY.primary_ip,),
        ipv6_prefixes=prefixes,
    )}


def test_a_rolled_back_record_keeps_only_the_80s_metadata_lists() -> None:
    (got,) = corroborate([PRIMARY], metadata(KEPT))
    assert got.ipv6_prefixes == (KEPT,)
    assert corroborate([PRIMARY], metadata(KEPT, STALE)) == (PRIMARY,)


def test_a_pod_on_an_80_metadata_no_longer_lists_keeps_its_address() -> None:
    pool = Ipam6()
    pool.set_enis([replace(PRIMARY, ipv6_prefixes=(STALE,))])
    alloc = pool.allocate(AttachmentKey("c1", "eth0"))
    diff = pool.set_enis(corroborate([PRIMARY], metadata(KEPT)))
    assert [v.key for v in diff.vanished] == [alloc.key]
    assert pool.get(alloc.key) == alloc  # still the pod's
    fresh = pool.allocate(AttachmentKey("c2", "eth0"))
    assert fresh.prefix == KEPT  # nothing new comes from the /80 EC2 took back


def test_an_eni_holding_only_ipv6_pods_is_kept_when_redis_lost_it() -> None:
    pool = Ipam6()
    pool.set_enis([PRIMARY])
    alloc = pool.allocate(AttachmentKey("c1", "eth0"))
    held = held_enis(a.eni for a in pool.allocations())
    verdict = resolve_enis([], held, {PRIMARY.mac: PRIMARY.eni_id}, [PRIMARY.mac])
    assert verdict.enis == (PRIMARY,) and verdict.kept == ("eni-0",)
    assert alloc.prefix in verdict.enis[0].ipv6_prefixes
