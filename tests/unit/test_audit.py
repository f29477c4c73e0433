"""The audit's invariant checks on hand-made snapshots."""

from __future__ import annotations

from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N

from vpcnet.domain import Assignment, EniRecord
from vpcnet.ops.audit import Ec2Eni, NodeView, PodView, Snapshot, audit
from vpcnet.wellknown import NOT_READY_TAINT


def eni(
    eni_id: str, ips: list[str], node: str = "n1", inst: str | None = "i-1", idx: int = 1
) -> Ec2Eni:
    return Ec2Eni(
        eni_id, "in-use" if inst else "available", node, inst, idx, frozenset(map(A, ips))
    )


def rec(eni_id: str, ips: list[str], idx: int = 1) -> EniRecord:
    return EniRecord(
        eni_id,
        f"02:00:00:00:00:0{idx}",
        idx,
        "subnet-1",
        N("10.0.1.0/24"),
        A(f"10.0.1.{100 + idx}"),
        tuple(map(A, ips)),
    )


def node(
    name: str = "n1",
    inst: str = "i-1",
    enis: tuple[EniRecord, ...] = (),
    assigned: dict[str, str] | None = None,
    ready: bool = True,
    taints: frozenset[str] = frozenset(),
) -> NodeView:
    asg = {
        A(ip): Assignment(A(ip), cid, "eth0", "default", f"p-{cid}")
        for ip, cid in (assigned or {}).items()
    }
    return NodeView(
        name, inst, True, True, "ready" if ready else "provisioned", taints, enis, asg, ready
    )


def kinds(snap: Snapshot) -> list[str]:
    return [v.kind for v in audit(snap)]


def test_clean_snapshot_has_no_violation() -> None:
    snap = Snapshot(
        "c",
        (eni("eni-1", ["10.0.1.5", "10.0.1.6"]),),
        (node(enis=(rec("eni-1", ["10.0.1.5", "10.0.1.6"]),), assigned={"10.0.1.5": "c1"}),),
        (PodView("default", "p-c1", "n1", A("10.0.1.5")),),
    )
    assert audit(snap) == []


def test_ip_assigned_on_two_nodes_is_reported() -> None:
    snap = Snapshot(
        "c",
        (eni("eni-1", ["10.0.1.5"]), eni("eni-2", ["10.0.1.9"], node="n2", inst="i-2")),
        (
            node(enis=(rec("eni-1", ["10.0.1.5"]),), assigned={"10.0.1.5": "c1"}),
            node("n2", "i-2", enis=(rec("eni-2", ["10.0.1.9"]),), assigned={"10.0.1.5": "c2"}),
        ),
    )
    ks = kinds(snap)
    assert "ip-assigned-twice" in ks
    assert "ip-not-on-node-eni" in ks  # n2's ENI does not hold 10.0.1.5


def test_leaked_and_orphaned_enis() -> None:
    old = Ec2Eni("eni-old", "available", "gone", None, None, frozenset(), frozenset(), 3600.0)
    young = Ec2Eni("eni-new", "available", "n1", None, None, frozenset(), frozenset(), 5.0)
    orphan = eni("eni-o", [], node="dead", inst="i-dead")
    snap = Snapshot("c", (old, young, orphan), (node(),), gc_grace_seconds=600)
    vs = audit(snap)
    assert [(v.kind, v.subject) for v in vs if v.invariant == 2] == [
        ("leaked-eni", "eni-old"),
        ("orphaned-eni", "eni-o"),
    ]


def test_redis_pool_must_equal_ec2() -> None:
    snap = Snapshot(
        "c",
        (eni("eni-1", ["10.0.1.5", "10.0.1.6"]), eni("eni-2", [], idx=2)),
        (node(enis=(rec("eni-1", ["10.0.1.5"]),)),),
    )
    assert sorted(kinds(snap)) == ["eni-missing-in-redis", "pool-differs"]


def test_taints_follow_agent_readiness() -> None:
    snap = Snapshot(
        "c",
        (),
        (node(ready=False), node("n2", "i-2", ready=True, taints=frozenset({NOT_READY_TAINT}))),
    )
    assert sorted(kinds(snap)) == ["stale-taint", "untainted-not-ready"]


def test_pod_ip_must_be_assigned_by_its_agent() -> None:
    snap = Snapshot(
        "c",
        (eni("eni-1", ["10.0.1.5"]),),
        (node(enis=(rec("eni-1", ["10.0.1.5"]),)),),
        (
            PodView("default", "a", "n1", A("10.0.1.5")),
            PodView("default", "b", "n1", A("10.0.1.5")),
        ),
    )
    assert sorted(set(kinds(snap))) == ["pod-ip-duplicate", "pod-ip-not-assigned"]
