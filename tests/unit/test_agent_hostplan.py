"""The pure host-network plan: tables, node rules, SNAT and metadata-redirect chains."""

from __future__ import annotations

import ipaddress

import pytest

from vpcnet.agent.hostplan import (
    IMDS_CHAIN,
    SNAT_CHAIN,
    RuleSpec,
    chain_rules_from_save,
    expected_save_lines,
    plan_host,
    plan_rules,
    render_restore,
)
from vpcnet.agent.routing import (
    PRIO_FROM_POD,
    PRIO_LEAVE_VPC,
    PRIO_POD_ANCHOR,
    PRIO_VPC_GOTO,
    eni_table,
    is_eni_table,
)
from vpcnet.domain import EniRecord

N = ipaddress.IPv4Network
A = ipaddress.IPv4Address
VPC = N("10.0.0.0/16")


def eni(idx: int, subnet: str, primary: str, mac: str) -> EniRecord:
    return EniRecord(
        eni_id=f"eni-{idx}",
        mac=mac,
        device_index=idx,
        subnet_id=f"subnet-{idx}",
        subnet_cidr=N(subnet),
        primary_ip=A(primary),
        is_primary=idx == 0,
    )


E0 = eni(0, "10.0.0.0/20", "10.0.0.4", "0a:00:00:00:00:00")
E1 = eni(1, "10.0.16.0/20", "10.0.16.9", "0a:00:00:00:00:01")
E2 = eni(2, "10.0.0.0/20", "10.0.0.9", "0a:00:00:00:00:02")
LINKS = {E0.mac: "eth0", E1.mac: "eth1", E2.mac: "ens7"}


def test_secondary_enis_get_a_table_address_mtu_and_the_primary_is_left_to_the_os() -> None:
    plan = plan_host([E2, E0, E1], LINKS, primary_ip=A("10.0.0.4"), vpc_cidrs=[VPC], snat=True)
    by_eni = {spec.eni.eni_id: spec for spec in plan.links}
    assert by_eni["eni-0"].table is None and by_eni["eni-0"].set_mtu is None
    assert by_eni["eni-0"].address is None
    assert by_eni["eni-1"].table == 101 and by_eni["eni-1"].set_mtu == 9001
    assert str(by_eni["eni-1"].address) == "10.0.16.9/20"
    assert {(r.table, str(r.dst), r.oif, str(r.gateway)) for r in plan.routes} == {
        (101, "10.0.16.1/32", "eth1", "None"),
        (101, "0.0.0.0/0", "eth1", "10.0.16.1"),
        (102, "10.0.0.1/32", "ens7", "None"),
        (102, "0.0.0.0/0", "ens7", "10.0.0.1"),
    }
    assert plan.tables == {101, 102}
    assert plan.sysctls["net/ipv4/ip_forward"] == "1"
    assert all(plan.sysctls[f"net/ipv4/conf/{n}/rp_filter"] == "2" for n in ("eth0", "eth1", "ens7"))


def test_enis_without_a_link_are_left_out_until_it_appears() -> None:
    plan = plan_host([E0, E1], {E0.mac: "eth0"}, primary_ip=A("10.0.0.4"), vpc_cidrs=[VPC], snat=True)
    assert [s.eni.eni_id for s in plan.links] == ["eni-0"]
    assert plan.routes == ()


def test_snat_rules_send_vpc_and_excluded_destinations_on_to_the_pod_rules() -> None:
    rules = plan_rules(True, [VPC, N("172.16.0.0/12"), N("10.0.5.0/24")])
    assert rules == (
        RuleSpec(PRIO_VPC_GOTO, "goto", dst=VPC, goto=PRIO_POD_ANCHOR),
        RuleSpec(PRIO_VPC_GOTO, "goto", dst=N("172.16.0.0/12"), goto=PRIO_POD_ANCHOR),
        RuleSpec(PRIO_LEAVE_VPC, "lookup", table=254),
        RuleSpec(PRIO_POD_ANCHOR, "nop"),
    )  # 10.0.5.0/24 is inside the VPC CIDR: collapsed away
    assert PRIO_POD_ANCHOR < PRIO_FROM_POD  # the anchor sits right before the pod rules


def test_without_snat_no_node_rules_and_no_chain() -> None:
    plan = plan_host([E0, E1], LINKS, primary_ip=A("10.0.0.4"), vpc_cidrs=[VPC], snat=False)
    assert plan.rules == ()
    assert plan.chains == ()


def test_snat_needs_the_vpc_cidrs() -> None:
    with pytest.raises(ValueError):
        plan_host([E0], LINKS, primary_ip=A("10.0.0.4"), vpc_cidrs=[], snat=True)


def test_snat_chain_and_restore_text() -> None:
    plan = plan_host(
        [E0],
        LINKS,
        primary_ip=A("10.0.0.4"),
        vpc_cidrs=[VPC],
        snat=True,
        snat_exclusions=[N("192.168.0.0/16")],
        imds_redirect_port=8181,
        veth_prefix="vpc",
    )
    assert [c.chain for c in plan.chains] == [SNAT_CHAIN, IMDS_CHAIN]
    text = render_restore(plan.chains, "nat")
    assert text.splitlines() == [
        "*nat",
        f":{SNAT_CHAIN} - [0:0]",
        f":{IMDS_CHAIN} - [0:0]",
        f"-A {SNAT_CHAIN} -d 10.0.0.0/16 -j RETURN",
        f"-A {SNAT_CHAIN} -d 192.168.0.0/16 -j RETURN",
        f"-A {SNAT_CHAIN} -j SNAT --to-source 10.0.0.4 --random-fully",
        f"-A {IMDS_CHAIN} -d 169.254.169.254/32 -i vpc+ -p tcp -m tcp --dport 80 "
        "-j DNAT --to-destination 10.0.0.4:8181",
        "COMMIT",
    ]
    snat = plan.chains[0]
    assert snat.hook == "POSTROUTING"
    assert snat.jump[-2:] == ("-j", SNAT_CHAIN)
    assert "LOCAL" in snat.jump  # never SNAT traffic to the node itself


def test_chain_comparison_against_iptables_save_output() -> None:
    plan = plan_host([E0], LINKS, primary_ip=A("10.0.0.4"), vpc_cidrs=[VPC], snat=True)
    chain = plan.chains[0]
    save = "\n".join(
        [
            "*nat",
            ":POSTROUTING ACCEPT [0:0]",
            f":{SNAT_CHAIN} - [0:0]",
            f'-A POSTROUTING -m comment --comment "x y" -j {SNAT_CHAIN}',
            *expected_save_lines(chain),
            "COMMIT",
        ]
    )
    assert chain_rules_from_save(save, SNAT_CHAIN) == expected_save_lines(chain)
    assert chain_rules_from_save(save, IMDS_CHAIN) is None  # absent chain


def test_eni_tables_are_bounded() -> None:
    assert eni_table(1) == 101
    with pytest.raises(ValueError):
        eni_table(0)
    with pytest.raises(ValueError):
        eni_table(101)
    assert [t for t in range(300) if is_eni_table(t)] == [eni_table(i) for i in range(1, 101)]
