"""``vpcnet status --json`` (the real command) shows the agent's own IPv6 count
(``agent_assigned6``, from the node's ``agent`` hash) and 0 for a hash an older agent
wrote without it."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.control_support import context_for, join
from tests.integration.test_control_ipv6_status import cli
from vpcnet.control.provision import provision_node
from vpcnet.settings import Settings
from vpcnet.state.records import AgentRecord
from vpcnet.wellknown import IP_FAMILY_ANNOTATION
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator


def test_status_shows_the_agents_ipv6_count(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator,
) -> None:
    ctx = context_for(control_settings)
    for name in ("new6", "old6"):
        iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], ec2_world.azs[0], name,
                   "m5.large", annotations={IP_FAMILY_ANNOTATION: "ipv6"})
        provision_node(ctx, name, iid, ec2_world.azs[0])
    redis = ctx.state.redis
    redis.hset(ctx.state.node_keys("new6").agent,
               mapping=AgentRecord(ready=True, assigned6=3).to_redis())
    old = {k: v for k, v in AgentRecord(ready=True).to_redis().items() if k != "assigned6"}
    redis.hset(ctx.state.node_keys("old6").agent, mapping=old)
    status: dict[str, Any] = json.loads(cli(control_settings, "status", "--json"))
    rows = {n["name"]: n for n in status["node_list"]}
    assert rows["new6"]["agent_assigned6"] == 3
    assert rows["old6"]["agent_assigned6"] == 0
