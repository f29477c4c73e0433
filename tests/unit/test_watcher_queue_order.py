"""The watcher loop takes an agent's ready report before the node events waiting ahead of
it (a join storm's backlog of new nodes must not hold the first nodes' node_ready), and
everything else in arrival order."""

from __future__ import annotations

from typing import Any, cast

from vpcnet.kube.types import NodeObj, NodeWatchEvent, WatchEventType
from vpcnet.settings import Settings
from vpcnet.watcher.inbox import AgentReady, CatchUp, Changed, Watched
from vpcnet.watcher.loop import Watcher


def _added(name: str) -> Watched:
    return Watched(NodeWatchEvent(WatchEventType.ADDED, "1", NodeObj(name=name)))


def test_agent_ready_goes_before_waiting_node_events() -> None:
    w = Watcher(Settings(), cast(Any, object()), cast(Any, object()), cast(Any, object()),
                leader_election=False)
    backlog = [_added(f"n{i}") for i in range(5)]
    for item in backlog[:3]:
        w._put(item)
    w._put(AgentReady("n0"))
    w._put(Changed("n1"))
    for item in backlog[3:]:
        w._put(item)
    w._put(AgentReady("n1"))
    w._put(CatchUp())
    taken = [w._take(0.0) for _ in range(9)]
    assert taken == [AgentReady("n0"), AgentReady("n1"), *backlog[:3], Changed("n1"),
                     *backlog[3:], CatchUp()]
    assert w._take(0.0) is None
