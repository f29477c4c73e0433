"""The agent's IMDS client reads an ENI's IPv6 keys: absent keys are empty, garbage is
an ImdsError like the IPv4 fields (loopback server with the real metadata layout)."""

from __future__ import annotations

import ipaddress

import pytest

from tests.unit.test_agent_imds import MAC0, MAC1, META, FakeImds, client, imds
from vpcnet.errors import ImdsError

__all__ = ["imds"]  # the fixture, imported for pytest

BASE1 = f"network/interfaces/macs/{MAC1}/"


def with_ipv6(monkeypatch: pytest.MonkeyPatch, **keys: str) -> None:
    for key, value in keys.items():
        monkeypatch.setitem(META, BASE1 + key.replace("_", "-"), value)


def test_ipv6_keys_are_read(imds: FakeImds, monkeypatch: pytest.MonkeyPatch) -> None:
    with_ipv6(monkeypatch, ipv6s="2001:db8:0:100::4\n2001:db8:0:100::5",
              ipv6_prefix="2001:db8:0:100:1::/80\n2001:db8:0:100:2::/80",
              subnet_ipv6_cidr_blocks="2001:db8:0:100::/64")
    eth1 = client(imds.url).interface(MAC1)
    assert eth1.ipv6s == (ipaddress.IPv6Address("2001:db8:0:100::4"),
                          ipaddress.IPv6Address("2001:db8:0:100::5"))
    assert eth1.ipv6_prefixes == (ipaddress.IPv6Network("2001:db8:0:100:1::/80"),
                                  ipaddress.IPv6Network("2001:db8:0:100:2::/80"))
    assert eth1.subnet_ipv6_cidr == ipaddress.IPv6Network("2001:db8:0:100::/64")


def test_absent_ipv6_keys_are_empty(imds: FakeImds) -> None:
    eth0 = client(imds.url).interface(MAC0)
    assert eth0.ipv6s == () and eth0.ipv6_prefixes == () and eth0.subnet_ipv6_cidr is None


@pytest.mark.parametrize(
    "keys",
    [
        {"ipv6s": "10.0.0.9"},  # an IPv4 address where IPv6 belongs
        {"ipv6s": "2001:db8::zz"},
        {"ipv6_prefix": "2001:db8:0:100:1::1/80"},  # host bits set
        {"ipv6_prefix": "not-a-prefix"},
        {"subnet_ipv6_cidr_blocks": "10.0.0.0/20"},
        {"subnet_ipv6_cidr_blocks": "2001:db8:0:100::/64\n2001:db8:0:101::/64"},
    ],
)
def test_garbage_is_an_imds_error(
    imds: FakeImds, monkeypatch: pytest.MonkeyPatch, keys: dict[str, str],
) -> None:
    with_ipv6(monkeypatch, **keys)
    with pytest.raises(ImdsError):
        client(imds.url).interface(MAC1)
