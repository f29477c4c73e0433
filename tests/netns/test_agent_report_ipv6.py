"""The real agent of an ipv6 node reports how many IPv6 pod addresses it assigned: in
the node's ``agent`` hash (``AgentRecord.assigned6``, what ``vpcnet status`` reads) and
as the ``vpcnet_agent_ipv6_assigned`` gauge; pods made by exec'ing the installed plugin."""

from __future__ import annotations

import pytest

from tests.fixtures.metrics import scrape, try_scrape
from tests.fixtures.netns import SimEnv, SimNode, wait_for
from tests.fixtures.redis import free_port
from tests.netns.test_agent_dual import PREFIX, dual_node, publish
from vpcnet.state.records import AgentRecord

pytestmark = pytest.mark.timeout(240)


def agent_record(node: SimNode) -> AgentRecord:
    client = node.env.redis()
    try:
        return AgentRecord.from_redis(client.hgetall(node.keys.agent))
    finally:
        client.close()


def test_the_agent_reports_its_ipv6_assignments(sim_env: SimEnv) -> None:
    node = dual_node(sim_env, "node-r6")
    port = free_port()
    agent = sim_env.agent(node, VPCNET_AGENT_METRICS_PORT=str(port)).start()
    agent.wait_ready(publish(node, (PREFIX,), family="ipv6"))
    assert agent_record(node).assigned6 == 0
    rt = agent.runtime()
    pods = [sim_env.new_pod(rt, f"r{i}") for i in range(2)]
    for pod in pods:
        rt.add(pod)
    rec = wait_for(lambda: (r := agent_record(node)).assigned6 == 2 and r, 30,
                   "the agent reporting 2 IPv6 addresses")
    assert rec.assigned == 0  # an ipv6-only pod takes no IPv4
    wait_for(lambda: try_scrape(port), 30, "the agent's metrics endpoint")
    assert scrape(port).value("vpcnet_agent_ipv6_assigned", node=node.name) == 2
    rt.delete(pods[0])
    wait_for(lambda: agent_record(node).assigned6 == 1, 30, "the report after a DEL")
    assert scrape(port).value("vpcnet_agent_ipv6_assigned", node=node.name) == 1
    rt.delete(pods[1])
