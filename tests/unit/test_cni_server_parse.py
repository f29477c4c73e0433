"""The agent re-validates every wire request (it never trusts the client)."""

from __future__ import annotations

import ipaddress
import json

import pytest

from vpcnet.agent.cniserver.request import Request, parse_request
from vpcnet.agent.ipam import AttachmentKey
from vpcnet.agent.podnet import eni_table, host_ifname, veth_macs
from vpcnet.cni.protocol import CniError
from vpcnet.domain import EniRecord


def raw(**doc: object) -> bytes:
    return json.dumps({"v": 1, **doc}).encode()


def test_valid_requests() -> None:
    assert parse_request(raw(command="STATUS")) == Request("STATUS")
    add = parse_request(raw(command="ADD", containerId="c1", ifname="eth0", netns="/run/netns/p", podName="web", mtu=1500))
    assert add.key == AttachmentKey("c1", "eth0") and add.pod_name == "web" and add.mtu == 1500
    check = parse_request(raw(command="CHECK", containerId="c1", ifname="eth0", netns="/n", expectIp="10.0.0.1"))
    assert check.expect_ip == ipaddress.IPv4Address("10.0.0.1")
    gc = parse_request(raw(command="GC", validAttachments=[["c1", "eth0"]]))
    assert gc.valid == frozenset({AttachmentKey("c1", "eth0")})
    assert parse_request(raw(command="DEL", containerId="c1", ifname="eth0")).netns == ""


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\xff", 6),
        (b"[]", 6),
        (json.dumps({"v": 2, "command": "ADD"}).encode(), 1),
        (raw(command="RM"), 4),
        (raw(command="ADD", containerId="../x", ifname="eth0", netns="/n"), 4),
        (raw(command="ADD", containerId="c", ifname="eth0/1", netns="/n"), 4),
        (raw(command="ADD", containerId="c", ifname="eth0"), 4),
        (raw(command="ADD", containerId="c", ifname="eth0", netns="n"), 4),
        (raw(command="ADD", containerId="c", ifname="eth0", netns="/n", podName="x" * 300), 4),
        (raw(command="ADD", containerId="c", ifname="eth0", netns="/n", mtu=100), 7),
        (raw(command="CHECK", containerId="c", ifname="eth0", netns="/n", expectIp="nope"), 7),
        (raw(command="GC", validAttachments=[["c"]]), 7),
    ],
)
def test_invalid_requests(data: bytes, code: int) -> None:
    with pytest.raises(CniError) as e:
        parse_request(data)
    assert e.value.code == code


def test_host_side_names_fit_and_are_stable() -> None:
    key = AttachmentKey("a" * 64, "eth0")
    name = host_ifname("vpc", key)
    assert name.startswith("vpc") and len(name) == 15 and name == host_ifname("vpc", key)
    assert host_ifname("vpc", AttachmentKey("a" * 64, "eth1")) != name
    host, pod = veth_macs(key)
    for mac in (host, pod):
        first = int(mac.split(":")[0], 16)
        assert first & 0b10 and not first & 0b1  # locally administered unicast
    assert host != pod


def test_eni_tables() -> None:
    def eni(index: int, primary: bool) -> EniRecord:
        return EniRecord("e", "02:00:00:00:00:01", index, "s", ipaddress.IPv4Network("10.0.0.0/16"),
                         ipaddress.IPv4Address("10.0.0.9"), is_primary=primary)

    assert eni_table(eni(0, True)) is None and eni_table(eni(2, False)) == 102
