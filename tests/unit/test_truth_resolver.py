"""Which ENIs the agent programs when Redis and the node disagree (invariant 7). Pure."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from vpcnet.agent.metadata import ImdsInterface
from vpcnet.agent.truth import corroborate, disputed, held_enis, resolve_enis
from vpcnet.domain import EniRecord

N, A = ipaddress.IPv4Network, ipaddress.IPv4Address
E0 = EniRecord("eni-0", "0a:00:00:00:00:00", 0, "s", N("10.0.0.0/20"), A("10.0.0.4"), is_primary=True)
E1 = EniRecord("eni-1", "0a:00:00:00:00:01", 1, "s", N("10.0.16.0/20"), A("10.0.16.4"), ips=(A("10.0.16.5"),))
E2 = EniRecord("eni-2", "0a:00:00:00:00:02", 2, "s", N("10.0.0.0/20"), A("10.0.0.9"), ips=(A("10.0.0.10"),))
ATTACHED = {E0.mac: "eni-0", E1.mac: "eni-1", E2.mac: "eni-2"}


def test_redis_is_followed_for_enis_no_pod_uses() -> None:
    v = resolve_enis([E0, E1], held_enis([E1]), None, [E0.mac, E1.mac, E2.mac])
    assert v.enis == (E0, E1) and not v.kept
    assert not disputed([E0, E1], held_enis([E1]))


def test_an_eni_in_use_missing_from_redis_is_kept_while_metadata_lists_it() -> None:
    held = held_enis([E2])
    assert disputed([E0, E1], held) == (E2,)
    v = resolve_enis([E0, E1], held, ATTACHED, [E0.mac, E1.mac])  # link gone, metadata has it
    assert v.enis == (E0, E1, E2) and v.kept == ("eni-2",)


def test_without_metadata_the_live_link_decides() -> None:
    assert resolve_enis([E0], held_enis([E2]), None, [E2.mac]).kept == ("eni-2",)
    assert resolve_enis([E0], held_enis([E2]), None, []).gone == ("eni-2",)


def test_metadata_and_links_both_saying_gone_unprogram_it() -> None:
    others = {E0.mac: "eni-0"}
    v = resolve_enis([E0], held_enis([E2]), others, [E0.mac])
    assert v.enis == (E0,) and v.gone == ("eni-2",)


def test_a_contradicting_record_does_not_repoint_running_pods() -> None:
    moved = replace(E1, mac="0a:ff:ff:ff:ff:01")
    v = resolve_enis([E0, moved], held_enis([E1]), ATTACHED, [E0.mac, E1.mac])
    assert v.enis == (E0, E1) and v.kept == ("eni-1",)
    # Another ENI claiming the device index of the one in use is dropped, not programmed
    # into the same route table.
    intruder = replace(E2, eni_id="eni-9", device_index=1)
    v = resolve_enis([E0, intruder], held_enis([E1]), ATTACHED, [E0.mac, E1.mac])
    assert v.enis == (E0, E1) and v.ignored == ("eni-9",)


def test_metadata_naming_another_eni_on_the_mac_wins_over_the_checkpoint() -> None:
    v = resolve_enis([E0], held_enis([E1]), {**ATTACHED, E1.mac: "eni-7"}, [E0.mac, E1.mac])
    assert v.gone == ("eni-1",) and v.enis == (E0,)


def test_during_a_rollback_only_ips_metadata_lists_join_the_pool() -> None:
    stale = replace(E1, ips=(A("10.0.16.5"), A("10.0.16.6")), prefixes=(N("10.0.17.0/28"),))
    iface = ImdsInterface(E1.mac, 1, "eni-1", "s", N("10.0.16.0/20"),
                          local_ipv4s=(A("10.0.16.4"), A("10.0.16.5")))  # .6 and the prefix: unassigned
    (got,) = corroborate([stale], {E1.mac: iface})
    assert got.ips == (A("10.0.16.5"),) and got.prefixes == ()
    # Metadata silent about the MAC (or naming another ENI): the record is left as it is.
    assert corroborate([stale], {}) == (stale,)
    assert corroborate([stale], {E1.mac: replace(iface, interface_id="eni-7")}) == (stale,)
