"""What the feeder threads put on the watcher loop's queue (the loop is its one reader).

The node list+watch, the ``agent-ready`` channel and the leader elector each run in a
thread of their own; they only enqueue these, so the loop's state needs no locks.
"""

from __future__ import annotations

from dataclasses import dataclass

from vpcnet.kube.types import NodeObj, NodeWatchEvent


@dataclass(frozen=True, slots=True)
class Listed:
    """Every node, from a list (the first one, or a relist after the watch expired)."""

    nodes: list[NodeObj]


@dataclass(frozen=True, slots=True)
class Watched:
    """One watch event about a node."""

    event: NodeWatchEvent


@dataclass(frozen=True, slots=True)
class AgentReady:
    """The node's agent reported it programmed the node."""

    node: str


@dataclass(frozen=True, slots=True)
class Changed:
    """The control plane rewrote the node's Redis state (its status annotation may lag)."""

    node: str


@dataclass(frozen=True, slots=True)
class CatchUp:
    """The Redis subscription (re)connected: messages sent meanwhile are lost."""


@dataclass(frozen=True, slots=True)
class Leadership:
    """The elector's notice that this replica gained or lost the Lease."""

    leading: bool


Item = Listed | Watched | AgentReady | Changed | CatchUp | Leadership
