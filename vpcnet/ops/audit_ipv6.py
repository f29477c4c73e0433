"""The audit's IPv6 checks: /80 prefixes and the pod addresses taken from them.

Pure, on the same snapshot as ``vpcnet.ops.audit``. What it holds to:

* invariant 1: a /80 is on one ENI in EC2, and Redis names it on the ENI EC2 gives it
  to; an IPv6 address is assigned to one pod, from a /80 the node's ENIs hold in EC2;
* invariant 4: Redis' /80s equal EC2's (a /80 in Redis only, or in EC2 only);
* invariant 2 (nothing leaked): a /80 on a managed ENI of a node whose family wants no
  IPv6 is being given back (in release-req) or still holds a pod's address; one that
  does neither has leaked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from vpcnet.domain import IPv6, IPv6Net
from vpcnet.ops.audit import NodeView, Snapshot, Violation

# (node, ENI id) holding a /80 in EC2
Holder = tuple[str, str]


def ec2_prefix_holders(snap: Snapshot) -> dict[IPv6Net, list[Holder]]:
    """Which attached ENIs hold each /80 in EC2: the cluster's tagged ENIs, and each
    node's primary ENI."""
    by_instance = {n.instance_id: n.name for n in snap.nodes}
    holders: dict[IPv6Net, list[Holder]] = defaultdict(list)
    for eni in snap.enis:
        if eni.instance_id is None:
            continue  # an unattached ENI is check_enis' (leaked-eni); GC frees its /80s
        node = by_instance.get(eni.instance_id, eni.node_tag)
        for p in eni.ipv6_prefixes:
            holders[p].append((node, eni.eni_id))
    for n in snap.nodes:
        for p in n.primary_eni_ipv6_prefixes:
            holders[p].append((n.name, n.primary_eni_id))
    return holders


def _node_ec2_prefixes(n: NodeView, holders: dict[IPv6Net, list[Holder]]) -> set[IPv6Net]:
    return {p for p, who in holders.items() if any(node == n.name for node, _ in who)}


def _twice(holders: dict[IPv6Net, list[Holder]]) -> Iterator[Violation]:
    for p, who in sorted(holders.items()):
        if len(set(who)) > 1:
            names = ", ".join(f"{node}/{eni}" for node, eni in sorted(set(who)))
            yield Violation(1, "ipv6-prefix-on-two-enis", str(p), f"EC2 ENIs {names}")


def _redis_vs_ec2(snap: Snapshot, holders: dict[IPv6Net, list[Holder]]) -> Iterator[Violation]:
    for n in snap.nodes:
        if not n.instance_alive:
            continue
        mine = _node_ec2_prefixes(n, holders)
        in_redis: set[IPv6Net] = set()
        for rec in n.redis_enis:
            for p in rec.ipv6_prefixes:
                in_redis.add(p)
                enis = sorted({eni for _, eni in holders.get(p, [])})
                if not enis:
                    yield Violation(4, "ipv6-prefix-missing-in-ec2", f"{n.name}/{rec.eni_id}",
                                    f"Redis names {p}, which no ENI holds in EC2")
                elif rec.eni_id not in enis:
                    yield Violation(1, "ipv6-prefix-held-twice", str(p),
                                    f"Redis gives it to {n.name}/{rec.eni_id}, EC2 to "
                                    + ", ".join(enis))
        for p in sorted(mine - in_redis):
            yield Violation(4, "ipv6-prefix-missing-in-redis", f"{n.name}/{p}", "in EC2 only")


def _addresses(snap: Snapshot, holders: dict[IPv6Net, list[Holder]]) -> Iterator[Violation]:
    taken: dict[IPv6, list[str]] = defaultdict(list)
    for n in snap.nodes:
        for ip, a in n.assigned6.items():
            taken[ip].append(f"{n.name}:{a.container_id[:12]}/{a.ifname}")
    for ip, who in sorted(taken.items()):
        if len(who) > 1:
            yield Violation(1, "ipv6-assigned-twice", str(ip), "held by " + ", ".join(who))
    for n in snap.nodes:
        mine = _node_ec2_prefixes(n, holders)
        for ip, a in sorted(n.assigned6.items()):
            if not any(ip in p for p in mine):
                yield Violation(1, "ipv6-not-in-node-prefix", str(ip),
                                f"assigned to {a.pod_namespace}/{a.pod_name} on {n.name}, but "
                                f"no /80 of {n.name}'s ENIs in EC2 holds it")


def _leaked(snap: Snapshot, holders: dict[IPv6Net, list[Holder]]) -> Iterator[Violation]:
    for n in snap.nodes:
        if n.ip_family.wants_ipv6 or not n.instance_alive:
            continue
        for p in sorted(_node_ec2_prefixes(n, holders) - n.release_requested6):
            if any(ip in p for ip in n.assigned6):
                continue  # a pod still holds an address of it: asked back once it is gone
            yield Violation(2, "ipv6-prefix-leaked", str(p),
                            f"on {n.name}, whose ip family {n.ip_family.value} wants no IPv6, "
                            "and not being given back (release-req)")


def check_ipv6(snap: Snapshot) -> list[Violation]:
    holders = ec2_prefix_holders(snap)
    return [*_twice(holders), *_redis_vs_ec2(snap, holders), *_addresses(snap, holders),
            *_leaked(snap, holders)]
