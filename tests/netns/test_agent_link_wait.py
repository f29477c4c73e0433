"""The real agent picks up a new ENI's link as soon as it is plugged (issue 13).

An ENI the control plane wrote to Redis before its link shows up on the host makes the
agent's pass leave it out ("has no link yet"). While such an ENI is pending the agent
looks for its link between passes, so the pass that programs it runs because the link
appeared, not a retry interval later; with no ENI pending it does not poll at all.

The agent's DEBUG log tells why each pass ran and each poll it made: the tests read the
order of those lines, never a time. The resync interval is far away, and nothing is
published after the plug, so no other wake-up can run the pass that programs the ENI.
"""

from __future__ import annotations

import pytest

from tests.fixtures.netns import AgentProcess, SimEnv, wait_for

pytestmark = pytest.mark.timeout(240)

POLL_LINE = "link poll: looking for"


def _appeared_line(eni_id: str) -> str:
    return f"ENI {eni_id}: its link"


def _missing_line(eni_id: str) -> str:
    return f"ENI {eni_id} ("


def _lines(agent: AgentProcess) -> list[str]:
    return agent.log().splitlines()


def _index(lines: list[str], needle: str) -> int:
    for i, line in enumerate(lines):
        if needle in line:
            return i
    raise AssertionError(f"no log line with {needle!r}")


def test_the_pass_that_programs_a_late_link_runs_because_the_link_appeared(sim_env: SimEnv) -> None:
    node = sim_env.add_node("node-a", subnet_index=0)
    node.attach_eni(subnet_index=1, device_index=1, ip_count=3)
    agent = sim_env.agent(node, VPCNET_AGENT_RESYNC_SECONDS="600").start()
    agent.wait_ready(node.publish_state())
    assert POLL_LINE not in agent.log()  # nothing was pending: no poll

    late = node.attach_eni(subnet_index=0, device_index=2, ip_count=3)
    gen = node.publish_state(plug=False)  # in Redis, but the NIC is not plugged yet
    wait_for(lambda: agent.log().count(POLL_LINE) >= 2, 20, f"the agent polling for {late}'s link")
    assert node.agent_hash().get("ready") == "0"
    sim_env.vpc.sync()  # the hypervisor hot-plugs the NIC
    agent.wait_ready(gen, timeout=20)
    assert node.agent_hash()["free"] == "6"

    lines = _lines(agent)
    appeared = _index(lines, _appeared_line(late))
    assert "appeared, pass now" in lines[appeared]
    # Every pass that missed the link ran before the poll saw it: the pass right after
    # the poll (the one that programmed the ENI) ran because of the link.
    missed = [i for i, line in enumerate(lines) if _missing_line(late) in line and "no link yet" in line]
    assert missed and max(missed) < appeared
    # Polling stopped with the link found: later passes (each woken by a publish) poll no more.
    polls = agent.log().count(POLL_LINE)
    for _ in range(2):
        agent.wait_ready(node.publish_state())
    assert agent.log().count(POLL_LINE) == polls


def test_a_failed_pass_retries_without_polling_links(sim_env: SimEnv) -> None:
    """A pass that fails (here: Redis says the node is another instance) is retried on the
    plain retry interval: the ENIs its older ``programmed`` lacks are not polled for."""
    node = sim_env.add_node("node-a", subnet_index=0)
    node.attach_eni(subnet_index=1, device_index=1, ip_count=3)
    agent = sim_env.agent(node, VPCNET_AGENT_RESYNC_SECONDS="600").start()
    late = node.attach_eni(subnet_index=0, device_index=2, ip_count=3)
    gen = node.publish_state(plug=False)
    wait_for(lambda: POLL_LINE in agent.log(), 30, f"the agent polling for {late}'s link")

    client = sim_env.redis()
    try:
        client.hset(node.keys.node, "ip_family", "ipv5")  # a ConfigError on every pass
        client.publish(node.keys.changed_channel, "node")
    finally:
        client.close()
    wait_for(lambda: "unknown ip_family" in node.agent_hash().get("error", ""), 20,
             "the agent's report of the bad ip_family")
    polls = agent.log().count(POLL_LINE)
    sim_env.vpc.sync()
    # Two more failed passes (plain retries), and not one poll in between.
    failed = agent.log().count("unknown ip_family")
    wait_for(lambda: agent.log().count("unknown ip_family") >= failed + 2, 20, "two more failed passes")
    assert agent.log().count(POLL_LINE) == polls
    assert _appeared_line(late) not in agent.log()
    assert not node.ready_at(gen)
