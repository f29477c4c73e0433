"""Which of a plan's EC2 actions may run side by side (pure).

A *lane* is a sequence of actions that must run in order: all actions on one existing
ENI (a DeleteOnTermination fix, an unassign, an assign: each reads the ENI the previous
left), or one new ENI's chain (CreateNetworkInterface, AttachNetworkInterface,
ModifyNetworkInterfaceAttribute, ``AddEni``). Distinct lanes touch distinct ENIs, so a
pass may run them in parallel: a node needing N new ENIs then waits for one chain's
latency, not N. RequestRelease is Redis only and belongs to no lane.
"""

from __future__ import annotations

from dataclasses import dataclass

from vpcnet.plan import (
    Action,
    AddEni,
    AssignIps,
    AssignIpv6Prefixes,
    AssignPrefixes,
    Plan,
    RequestRelease,
)


@dataclass(frozen=True, slots=True)
class Lane:
    actions: tuple[Action, ...]

    @property
    def adds_eni(self) -> bool:
        """A new ENI's chain (its ENI does not exist before the pass)."""
        return any(isinstance(a, AddEni) for a in self.actions)

    @property
    def ahead(self) -> bool:
        """An ENI held ahead of demand (``AddEni.ahead``): best effort, its failure is not
        the pass's."""
        return bool(self.actions) and all(isinstance(a, AddEni) and a.ahead for a in self.actions)

    @property
    def grows_pool(self) -> bool:
        """Adds addresses (or a /80) to an existing ENI: what pods waiting on the node need
        first."""
        return any(isinstance(a, AssignIps | AssignPrefixes | AssignIpv6Prefixes)
                   for a in self.actions)


def plan_lanes(plan: Plan) -> tuple[Lane, ...]:
    """The plan's EC2 actions as lanes: existing ENIs' first (in plan order), then one
    lane per new ENI (by device index, as planned)."""
    by_eni: dict[str, list[Action]] = {}
    chains: list[Lane] = []
    for a in plan.actions:
        if isinstance(a, RequestRelease):
            continue
        if isinstance(a, AddEni):
            chains.append(Lane((a,)))
        else:
            by_eni.setdefault(a.eni_id, []).append(a)
    return (*(Lane(tuple(actions)) for actions in by_eni.values()), *chains)


__all__ = ["Lane", "plan_lanes"]
