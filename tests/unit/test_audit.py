"""The audit's invariant checks on hand-made snapshots."""

from __future__ import annotations

from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N

from vpcnet.domain import Assignment, EniRecord
from vpcnet.ops.audit import Ec2Eni, NodeView, PodView, Snapshot, audit
from vpcnet.wellknown import NO_FREE_IPS_TAINT, NOT_READY_TAINT


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
    cooling: tuple[str, ...] = (),
    release_requested: tuple[str, ...] = (),
    why_no_growth: str = "",
) -> NodeView:
    asg = {
        A(ip): Assignment(A(ip), cid, "eth0", "default", f"p-{cid}")
        for ip, cid in (assigned or {}).items()
    }
    return NodeView(
        name, inst, True, True, "ready" if ready else "provisioned", taints, enis, asg, ready,
        cooling=frozenset(map(A, cooling)), release_requested=frozenset(map(A, release_requested)),
        why_no_growth=why_no_growth,
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


# The no-free-IPs taint: the audit flags an untainted node exactly when the warm-pool
# scan's rule (vpcnet.ipsupply.no_ip_can_be_had) says no IP can be had.
LIMITS = "ENI and IP limits reached: 3 of 3 ENIs and 10 of 10 IPs per ENI (m5.large)"
TWO = ["10.0.1.5", "10.0.1.6"]


def one_node(n: NodeView) -> Snapshot:
    return Snapshot("c", (eni("eni-1", TWO),), (n,))


def pool_node(
    assigned: dict[str, str],
    cooling: tuple[str, ...] = (),
    release_requested: tuple[str, ...] = (),
    why_no_growth: str = "",
    taints: frozenset[str] = frozenset(),
) -> NodeView:
    return node(enis=(rec("eni-1", TWO),), assigned=assigned, taints=taints, cooling=cooling,
                release_requested=release_requested, why_no_growth=why_no_growth)


def test_a_fully_assigned_node_whose_pool_can_grow_is_not_flagged() -> None:
    # Warm or prefix mode below the limits: an ADD waits for the pass that grows the pool.
    snap = one_node(pool_node(assigned={"10.0.1.5": "c1", "10.0.1.6": "c2"}))
    assert kinds(snap) == []


def test_a_node_at_its_limits_with_an_ip_leaving_the_cooldown_is_not_flagged() -> None:
    snap = one_node(pool_node(assigned={"10.0.1.5": "c1"}, cooling=("10.0.1.6",),
                              why_no_growth=LIMITS))
    assert kinds(snap) == []


def test_a_node_that_cannot_grow_and_gives_its_last_free_ip_back_untainted_is_flagged() -> None:
    # The node's pass fails (it is in error) and the trim asked for the one free IP: no ADD
    # can get an IP, though fewer IPs are assigned than the pool holds.
    snap = one_node(pool_node(assigned={"10.0.1.5": "c1"}, release_requested=("10.0.1.6",),
                              why_no_growth="AssignPrivateIpAddresses: UnauthorizedOperation"))
    assert kinds(snap) == ["pool-empty-untainted"]


def test_a_node_at_its_limits_fully_assigned_must_carry_the_taint() -> None:
    full = {"10.0.1.5": "c1", "10.0.1.6": "c2"}
    assert kinds(one_node(pool_node(assigned=full, why_no_growth=LIMITS))) == [
        "pool-empty-untainted"
    ]
    tainted = pool_node(assigned=full, why_no_growth=LIMITS, taints=frozenset({NO_FREE_IPS_TAINT}))
    assert kinds(one_node(tainted)) == []
