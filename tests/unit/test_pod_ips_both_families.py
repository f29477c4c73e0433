"""Kubernetes-side pod IPs of both families: ``PodObj`` reads all of ``status.podIPs``
(``podIP`` where the list is absent), and the audit's pod checks (no pod IP on two pods,
every pod IP held by its node's agent) cover the IPv6 ones too."""

from __future__ import annotations

import ipaddress

from vpcnet.domain import Assignment
from vpcnet.kube.types import PodObj
from vpcnet.ops.audit import NodeView, PodView, Snapshot, check_ip_uniqueness

V4, V6 = ipaddress.IPv4Address("10.0.1.5"), ipaddress.IPv6Address("2001:db8:0:1:a::5")


def test_pod_obj_reads_every_listed_address() -> None:
    dual = PodObj.from_api({"metadata": {"name": "d"}, "status": {
        "podIP": "10.0.1.5", "podIPs": [{"ip": "10.0.1.5"}, {"ip": "2001:db8:0:1:a::5"}]}})
    assert dual.pod_ips == (V4, V6) and dual.pod_ip == V4 and dual.pod_ip6 == V6
    only6 = PodObj.from_api({"status": {"podIP": "2001:db8:0:1:a::5",
                                        "podIPs": [{"ip": "2001:db8:0:1:a::5"}]}})
    assert only6.pod_ips == (V6,) and only6.pod_ip is None and only6.pod_ip6 == V6
    # an API server or object without podIPs: podIP alone
    legacy = PodObj.from_api({"status": {"podIP": "10.0.1.5"}})
    assert legacy.pod_ips == (V4,) and legacy.pod_ip6 is None
    junk = PodObj.from_api({"status": {"podIPs": [{"ip": "nope"}, {}, "x", {"ip": "10.0.1.5"}]}})
    assert junk.pod_ips == (V4,)
    assert PodObj.from_api({"status": {}}).pod_ips == ()


def node(assigned6: dict[ipaddress.IPv6Address, Assignment]) -> NodeView:
    a4 = Assignment(V4, "c1", "eth0", "default", "d")
    return NodeView(name="n1", instance_id="i-1", instance_alive=True, in_kubernetes=True,
                    phase="ready", taints=frozenset(), redis_enis=(), assigned={V4: a4},
                    agent_ready=True, assigned6=assigned6)


def pod_kinds(snap: Snapshot) -> list[tuple[str, str, str]]:
    return [(v.kind, v.subject, v.detail) for v in check_ip_uniqueness(snap) if v.kind.startswith("pod-")]


def test_the_audit_checks_a_pods_ipv6_against_the_agent() -> None:
    a6 = Assignment(V6, "c1", "eth0", "default", "d")
    pod = PodView("default", "d", "n1", V4, V6)
    held = Snapshot(cluster="c", enis=(), nodes=(node({V6: a6}),), pods=(pod,))
    assert pod_kinds(held) == []
    not_held = Snapshot(cluster="c", enis=(), nodes=(node({}),), pods=(pod,))
    assert pod_kinds(not_held) == [
        ("pod-ip-not-assigned", "default/d", f"pod IP {V6} is not assigned by the agent of n1")]


def test_the_audit_finds_an_ipv6_on_two_pods() -> None:
    a6 = Assignment(V6, "c1", "eth0", "default", "d")
    twins = (PodView("default", "d", "n1", V4, V6), PodView("default", "e", "n1", None, V6))
    snap = Snapshot(cluster="c", enis=(), nodes=(node({V6: a6}),), pods=twins)
    assert pod_kinds(snap) == [("pod-ip-duplicate", str(V6), "pods default/d, default/e")]


def test_ipv4_pod_checks_are_unchanged() -> None:
    other = ipaddress.IPv4Address("10.0.1.6")
    pods = (PodView("default", "x", "n1", other), PodView("default", "y", "n1", other))
    snap = Snapshot(cluster="c", enis=(), nodes=(node({}),), pods=pods)
    assert [k for k, _, _ in pod_kinds(snap)] == ["pod-ip-duplicate", "pod-ip-not-assigned",
                                                 "pod-ip-not-assigned"]
