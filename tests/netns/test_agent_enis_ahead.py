"""The real agent with warm mode's ENIs held ahead (issue 13): ENIs attached with no
secondary IP are programmed (the node is ready with them), and the IPs a provisioning
pass then assigns to several of them at once, landed in one store write, are all in the
pool from the one pass that read that write: the first report at its generation counts
them all free, not one ENI's worth per pass. With the host side unchanged (only
addresses moved), that pass hands them to the pool before its host pass, not after (its
DEBUG log says so).

The resync interval is far away and nothing else is published, so the only pass that
can run after the write is the one it woke.
"""

from __future__ import annotations

import pytest

from tests.fixtures.netns import SimEnv

pytestmark = pytest.mark.timeout(240)

EARLY_LINE = "host plan unchanged: the pool follows the ENIs before the host pass"


def test_ips_assigned_to_several_enis_held_ahead_are_programmed_in_one_pass(sim_env: SimEnv) -> None:
    node = sim_env.add_node("node-a", subnet_index=0)
    node.attach_eni(subnet_index=0, device_index=1, ip_count=0)  # held ahead: no IP
    node.attach_eni(subnet_index=0, device_index=2, ip_count=0)
    agent = sim_env.agent(node, VPCNET_AGENT_RESYNC_SECONDS="600").start()
    agent.wait_ready(node.publish_state())
    report = node.agent_hash()
    assert "has no link yet" not in agent.log()
    free = int(report["free"])
    assert free == len(node.eni_view(0)["secondary_ips"])  # the empty ENIs add nothing

    early = agent.log().count(EARLY_LINE)
    for device_index, count in ((0, 2), (1, 3), (2, 4)):  # one pass's parallel assigns
        node.assign_ips(device_index, count)
    gen = node.publish_state()
    agent.wait_ready(gen)
    after = node.agent_hash()
    assert int(after["generation"]) == gen
    assert int(after["free"]) == free + 2 + 3 + 4, after
    assert agent.log().count(EARLY_LINE) > early
