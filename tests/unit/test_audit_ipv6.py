"""The audit's IPv6 checks on hand-made snapshots: a /80 held twice, an IPv6 address
assigned twice or outside the node's /80s, Redis and EC2 disagreeing on /80s, leaked
/80s, and the no-free-IPs taint of a node without its /80."""

from __future__ import annotations

from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N
from ipaddress import IPv6Address as A6
from ipaddress import IPv6Network as N6

from vpcnet.domain import Assignment, EniRecord, IpFamily
from vpcnet.ops.audit import Ec2Eni, NodeView, Snapshot, audit
from vpcnet.wellknown import NO_FREE_IPS_TAINT

P1 = N6("2001:db8:0:1:1::/80")
P2 = N6("2001:db8:0:1:2::/80")
POD1 = A6("2001:db8:0:1:1::5")


def primary(eni_id: str = "eni-p1", v6: tuple[N6, ...] = (P1,)) -> EniRecord:
    return EniRecord(eni_id, "02:00:00:00:00:00", 0, "subnet-1", N("10.0.1.0/24"),
                     A("10.0.1.10"), (A("10.0.1.11"),), is_primary=True, ipv6_prefixes=v6,
                     subnet_ipv6_cidr=N6("2001:db8:0:1::/64"))


def node(name: str = "n1", inst: str = "i-1", *, redis_v6: tuple[N6, ...] = (P1,),
         ec2_v6: tuple[N6, ...] = (P1,), family: IpFamily = IpFamily.DUAL,
         assigned6: dict[A6, str] | None = None, requested6: tuple[N6, ...] = (),
         taints: frozenset[str] = frozenset(), why_no_growth: str = "") -> NodeView:
    return NodeView(
        name, inst, True, True, "ready", taints, (primary(f"eni-p-{name}", redis_v6),), {}, True,
        primary_eni_ips=frozenset({A("10.0.1.11")}), why_no_growth=why_no_growth,
        ip_family=family,
        assigned6={ip: Assignment(ip, cid, "eth0", "default", f"p-{cid}")
                   for ip, cid in (assigned6 or {}).items()},
        release_requested6=frozenset(requested6), primary_eni_id=f"eni-p-{name}",
        primary_eni_ipv6_prefixes=frozenset(ec2_v6),
    )


def kinds(*nodes: NodeView, enis: tuple[Ec2Eni, ...] = ()) -> list[str]:
    return [v.kind for v in audit(Snapshot("c", enis, nodes))]


def test_a_dual_node_with_its_80_and_a_pod_in_it_is_clean() -> None:
    assert kinds(node(assigned6={POD1: "c1"})) == []


def test_an_80_on_two_enis_in_ec2_is_reported() -> None:
    other = Ec2Eni("eni-2", "in-use", "n2", "i-2", 1, ipv6_prefixes=frozenset({P1}))
    got = kinds(node(), node("n2", "i-2", redis_v6=(), ec2_v6=()), enis=(other,))
    assert "ipv6-prefix-on-two-enis" in got


def test_redis_naming_an_80_ec2_gives_another_eni_is_reported() -> None:
    got = kinds(node(), node("n2", "i-2", redis_v6=(P1,), ec2_v6=(P2,)))
    assert "ipv6-prefix-held-twice" in got
    assert "ipv6-prefix-missing-in-redis" in got  # n2's own P2 is in EC2 only


def test_an_80_in_redis_only_is_reported() -> None:
    assert kinds(node(redis_v6=(P1,), ec2_v6=())).count("ipv6-prefix-missing-in-ec2") == 1


def test_an_ipv6_address_assigned_to_two_pods_is_reported() -> None:
    got = kinds(node(assigned6={POD1: "c1"}), node("n2", "i-2", redis_v6=(P2,), ec2_v6=(P2,),
                                                   assigned6={POD1: "c2"}))
    assert "ipv6-assigned-twice" in got
    assert "ipv6-not-in-node-prefix" in got  # n2's /80 does not hold it


def test_an_assigned_ipv6_outside_the_nodes_ec2_80s_is_reported() -> None:
    assert kinds(node(assigned6={A6("2001:db8:0:1:9::1"): "c1"})) == ["ipv6-not-in-node-prefix"]


def test_an_80_on_a_node_wanting_no_ipv6_has_leaked_unless_being_given_back() -> None:
    assert kinds(node(family=IpFamily.IPV4)) == ["ipv6-prefix-leaked"]
    assert kinds(node(family=IpFamily.IPV4, requested6=(P1,))) == []


def test_an_ipv6_node_without_its_80_that_cannot_get_one_must_be_tainted() -> None:
    bare = node(family=IpFamily.IPV6, redis_v6=(), ec2_v6=(), why_no_growth="no IPv6 CIDR")
    assert kinds(bare) == ["pool-empty-untainted"]
    assert kinds(node(family=IpFamily.IPV6, redis_v6=(), ec2_v6=(), why_no_growth="no IPv6 CIDR",
                      taints=frozenset({NO_FREE_IPS_TAINT}))) == []


def test_an_unwanted_80_a_pod_still_uses_is_not_leaked() -> None:
    assert kinds(node(family=IpFamily.IPV4, assigned6={POD1: "c1"})) == []
