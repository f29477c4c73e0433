"""The real agent: a pass woken by a write that only moved addresses feeds the pool and
skips the host pass (drift repair), so that during a burst each round's IPs reach the
waiting ADDs without a host pass in between (issue 13); drift is still repaired, by the
next pass whose host side changed and by the periodic pass.

Drift here: one route of an ENI's route table deleted by hand in the node's namespace.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.fixtures.netns import SimEnv, SimNode, wait_for

pytestmark = pytest.mark.timeout(240)

SKIPPED_LINE = "host pass skipped: a woken pass that only moved addresses"


def _eni_routes(node: SimNode) -> list[str]:
    """The IPv4 routes of the ENIs' own tables (not main, local or default)."""
    out = subprocess.run(["ip", "-n", node.netns, "-4", "route", "show", "table", "all"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines()
            if " table " in line and not any(f" table {t}" in line for t in ("main", "local", "default"))]


def _drift(node: SimNode) -> str:
    """Delete one ENI-table route by hand; the route deleted."""
    route = sorted(_eni_routes(node))[0]
    subprocess.run(["ip", "-n", node.netns, "route", "del", *route.split()], check=True)
    assert route not in _eni_routes(node)
    return route


def test_a_woken_pass_that_only_moved_addresses_feeds_the_pool_without_a_host_pass(
    sim_env: SimEnv,
) -> None:
    node = sim_env.add_node("node-h", subnet_index=0)
    node.attach_eni(subnet_index=0, device_index=1, ip_count=2)
    agent = sim_env.agent(node, VPCNET_AGENT_RESYNC_SECONDS="600").start()
    agent.wait_ready(node.publish_state())
    free = int(node.agent_hash()["free"])
    route = _drift(node)

    node.assign_ips(1, 3)  # addresses only: the host side is the one programmed
    gen = node.publish_state()
    agent.wait_ready(gen)
    assert int(node.agent_hash()["free"]) == free + 3
    assert route not in _eni_routes(node), "the woken pass ran a host pass"
    assert SKIPPED_LINE in agent.log()

    node.attach_eni(subnet_index=0, device_index=2, ip_count=1)  # the host side changes
    agent.wait_ready(node.publish_state())
    assert route in _eni_routes(node), "a changed host side repairs the drift too"


def test_the_periodic_pass_repairs_drift(sim_env: SimEnv) -> None:
    node = sim_env.add_node("node-p", subnet_index=0)
    node.attach_eni(subnet_index=0, device_index=1, ip_count=2)
    agent = sim_env.agent(node, VPCNET_AGENT_RESYNC_SECONDS="1").start()
    agent.wait_ready(node.publish_state())
    route = _drift(node)
    wait_for(lambda: route in _eni_routes(node), 30, "the periodic pass to restore the route")
