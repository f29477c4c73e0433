"""The host half and the pod half of the node's routing agree on every ENI's table."""

from __future__ import annotations

import ipaddress

from vpcnet.agent.hostplan import plan_host
from vpcnet.agent.podnet import eni_table as pod_rule_table
from vpcnet.agent.routing import MAX_DEVICE_INDEX, eni_table, is_eni_table
from vpcnet.domain import EniRecord

N = ipaddress.IPv4Network
A = ipaddress.IPv4Address


def eni(idx: int) -> EniRecord:
    return EniRecord(
        eni_id=f"eni-{idx}", mac=f"0a:00:00:00:00:{idx:02x}", device_index=idx,
        subnet_id="subnet-1", subnet_cidr=N("10.0.0.0/16"), primary_ip=A(f"10.0.1.{idx}"),
        is_primary=idx == 0,
    )


def test_pod_rules_look_up_the_table_the_host_plan_fills() -> None:
    enis = [eni(i) for i in range(MAX_DEVICE_INDEX + 1)]
    plan = plan_host(enis, {e.mac: f"eth{e.device_index}" for e in enis},
                     primary_ip=A("10.0.1.0"), vpc_cidrs=[N("10.0.0.0/16")], snat=False)
    host_tables = {link.eni.device_index: link.table for link in plan.links}
    assert host_tables == {e.device_index: pod_rule_table(e) for e in enis}
    assert host_tables[0] is None  # the primary ENI's pods use the main table
    assert all(is_eni_table(eni_table(i)) for i in range(1, MAX_DEVICE_INDEX + 1))
