"""The plugin's ADD result with both families per spec version (0.4.0, 1.0.0, 1.1.0),
an ipv6-only pod, a prevResult passed through, and CHECK finding both addresses.

Shapes per containernetworking/cni SPEC.md: 0.4.0 ``ips[]`` entries carry ``version``
("4"/"6"), 1.0.0 dropped it; 1.1.0 adds the interface ``mtu``; every entry names its
interface by index; ``routes`` are ``{dst, gw}``.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from tests.unit.test_cni_plugin import ADD_REPLY, ScriptedAgent, agent, conf, env, run  # noqa: F401
from vpcnet.agent.cniserver.request import parse_request
from vpcnet.cni.protocol import CniError

DUAL_REPLY = {**ADD_REPLY, "ip6": "2001:db8:1:2:3::7", "gateway6": "fe80::1"}
V6_REPLY = {k: v for k, v in DUAL_REPLY.items() if k not in ("ip", "gateway")}


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_dual_add_result_lists_both_addresses_per_version(agent: ScriptedAgent, version: str) -> None:  # noqa: F811
    agent.reply = DUAL_REPLY
    rc, out = run(env("ADD"), conf(agent.path, version))
    assert rc == 0
    pod_if: dict[str, Any] = {"name": "eth0", "mac": "0a:00:00:00:00:02", "sandbox": "/run/netns/pod"}
    if version == "1.1.0":
        pod_if["mtu"] = 9001
    ip4: dict[str, Any] = {"address": "10.0.1.7/32", "gateway": "169.254.1.1", "interface": 1}
    ip6: dict[str, Any] = {"address": "2001:db8:1:2:3::7/128", "gateway": "fe80::1", "interface": 1}
    if version == "0.4.0":
        ip4["version"], ip6["version"] = "4", "6"
    assert out == {
        "cniVersion": version,
        "interfaces": [{"name": "vpc0123456789ab", "mac": "02:00:00:00:00:01"}, pod_if],
        "ips": [ip4, ip6],
        "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}, {"dst": "::/0", "gw": "fe80::1"}],
        "dns": {},
    }


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_ipv6_only_add_result_has_only_the_ipv6(agent: ScriptedAgent, version: str) -> None:  # noqa: F811
    agent.reply = V6_REPLY
    rc, out = run(env("ADD"), conf(agent.path, version))
    assert rc == 0
    assert [i["address"] for i in out["ips"]] == ["2001:db8:1:2:3::7/128"]
    assert out["routes"] == [{"dst": "::/0", "gw": "fe80::1"}]
    assert ("version" in out["ips"][0]) == (version == "0.4.0")


def test_a_reply_with_no_address_is_an_agent_protocol_error(agent: ScriptedAgent) -> None:  # noqa: F811
    agent.reply = {k: v for k, v in ADD_REPLY.items() if k not in ("ip", "gateway")}
    rc, err = run(env("ADD"), conf(agent.path))
    assert rc == 1 and err["code"] == 103


def test_dual_prev_result_is_passed_through_to_a_chained_plugin(agent: ScriptedAgent) -> None:  # noqa: F811
    agent.reply = DUAL_REPLY
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "lo0", "sandbox": "/run/netns/pod"}],
        "ips": [{"address": "192.168.0.2/24", "interface": 0}],
        "routes": [{"dst": "192.168.0.0/16"}],
    }
    rc, out = run(env("ADD"), conf(agent.path, "1.0.0", prevResult=prev))
    assert rc == 0
    assert out["ips"] == [
        prev["ips"][0],
        {"address": "10.0.1.7/32", "gateway": "169.254.1.1", "interface": 2},
        {"address": "2001:db8:1:2:3::7/128", "gateway": "fe80::1", "interface": 2},
    ]
    # What portmap gets as its prevResult: every ips[] entry names an interface of the
    # result, and both families' addresses are there for it to map.
    assert all(0 <= e["interface"] < len(out["interfaces"]) for e in out["ips"])


@pytest.mark.parametrize("reply,expect", [
    (DUAL_REPLY, {"expectIp": "10.0.1.7", "expectIp6": "2001:db8:1:2:3::7"}),
    (V6_REPLY, {"expectIp6": "2001:db8:1:2:3::7"}),
    (ADD_REPLY, {"expectIp": "10.0.1.7"}),
])
def test_check_sends_the_addresses_of_both_families(
    agent: ScriptedAgent, reply: dict[str, Any], expect: dict[str, str]  # noqa: F811
) -> None:
    for version in ("0.4.0", "1.0.0", "1.1.0"):
        agent.reply = reply
        _, added = run(env("ADD"), conf(agent.path, version))
        agent.reply = {"ok": True}
        rc, out = run(env("CHECK"), conf(agent.path, version, prevResult=added))
        assert (rc, out) == (0, None)
        sent = agent.requests[-1]
        assert {k: sent[k] for k in ("expectIp", "expectIp6") if k in sent} == expect


def test_the_agent_parses_expect_ip6_of_a_check() -> None:
    def check(**expect: object) -> bytes:
        return json.dumps({"v": 1, "command": "CHECK", "containerId": "c1", "ifname": "eth0",
                           "netns": "/n", **expect}).encode()

    dual = parse_request(check(expectIp="10.0.0.1", expectIp6="2001:db8::7"))
    assert dual.expect_ip == ipaddress.IPv4Address("10.0.0.1")
    assert dual.expect_ip6 == ipaddress.IPv6Address("2001:db8::7")
    only6 = parse_request(check(expectIp6="2001:db8::7"))
    assert only6.expect_ip is None and only6.expect_ip6 == ipaddress.IPv6Address("2001:db8::7")
    for bad in ({}, {"expectIp6": "10.0.0.1"}, {"expectIp": "2001:db8::7"}, {"expectIp6": 7}):
        with pytest.raises(CniError) as e:
            parse_request(check(**bad))
        assert e.value.code == 7
