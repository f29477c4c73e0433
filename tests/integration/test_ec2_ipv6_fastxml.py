"""The hand-written ENI XML carries IPv6 exactly as moto's serializer renders it."""

from __future__ import annotations

from tests.integration.ipv6_support import primary_eni
from tests.integration.test_sim_ec2_fastxml import both
from vpcnet_sim.ec2 import Ec2Emulator, World


def test_fast_xml_equals_moto_serializer_with_ipv6(
    ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    ec2 = ec2_emulator.client()
    eni = primary_eni(ec2, ec2_emulator.run_instance("m5.xlarge", ec2_world.subnet_ids[0]))
    ec2.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6PrefixCount=2)
    ec2.create_network_interface(SubnetId=ec2_world.subnet_ids[1], Ipv6AddressCount=2)
    fast, slow = both(lambda: ec2.describe_network_interfaces())
    assert fast == slow
    with_prefixes = [n for n in fast["NetworkInterfaces"] if n.get("Ipv6Prefixes")]
    assert len(with_prefixes) == 1 and len(with_prefixes[0]["Ipv6Prefixes"]) == 2
    assert sorted(len(n["Ipv6Addresses"]) for n in fast["NetworkInterfaces"]) == [1, 2]
