"""The EC2 call priority a context declares (``vpcnet.aws.priority``)."""

from __future__ import annotations

from vpcnet.aws.priority import CallPriority, Priority, background, current_priority, foreground


def test_undeclared_work_is_background() -> None:
    assert current_priority("AssignPrivateIpAddresses") == CallPriority(Priority.BACKGROUND)


def test_a_joining_node_is_foreground_with_its_node_and_nesting_restores() -> None:
    with foreground("node-1"):
        assert current_priority("CreateNetworkInterface") == CallPriority(Priority.FOREGROUND, "node-1")
        with background():
            assert current_priority("DescribeInstances").level is Priority.BACKGROUND
        assert current_priority("DescribeInstances").node == "node-1"
    assert current_priority().level is Priority.BACKGROUND


def test_releases_are_background_even_in_a_foreground_context() -> None:
    with foreground("node-1"):
        for action in ("UnassignPrivateIpAddresses", "DetachNetworkInterface", "DeleteNetworkInterface"):
            assert current_priority(action).level is Priority.BACKGROUND
