"""The real agent serves /metrics (pool, readiness, CNI requests by command and code) and
logs JSON naming its node and, per CNI request, the container; pods are made by exec'ing
the installed plugin in real namespaces."""

from __future__ import annotations

import dataclasses

import pytest

from tests.fixtures.metrics import Scrape, json_lines, scrape, try_scrape
from tests.fixtures.netns import SimEnv, wait_for
from tests.fixtures.redis import free_port
from vpcnet_sim.runtime import CniError

pytestmark = pytest.mark.timeout(180)

ERR_CHECK_FAILED = 102


def test_agent_metrics_and_json_logs_around_add_check_del(sim_env: SimEnv) -> None:
    node = sim_env.add_node("node-m")
    node.attach_eni(subnet_index=1, device_index=1, ip_count=4)
    port = free_port()
    agent = sim_env.agent(node, VPCNET_AGENT_METRICS_PORT=str(port)).start()
    generation = node.publish_state()
    agent.wait_ready(generation)
    pool_size = sum(len(r.pod_ips()) for r in node.records())
    name = node.name

    def pool(m: Scrape) -> dict[str, float]:
        return m.by("vpcnet_agent_pool_ips", "state", node=name)

    m = wait_for(lambda: try_scrape(port), 30, "the agent's metrics endpoint")
    assert m.value("vpcnet_agent_ready", node=name) == 1
    assert m.value("vpcnet_agent_programmed_generation", node=name) == generation
    assert m.value("vpcnet_agent_enis", node=name) == len(node.records())
    assert m.value("vpcnet_agent_redis_up", node=name) == 1
    assert pool(m) == {"total": pool_size, "free": pool_size, "assigned": 0, "cooldown": 0}

    rt = agent.runtime()
    pod = sim_env.new_pod(rt, "m1")
    rt.add(pod)
    m = scrape(port)
    assert m.value("vpcnet_agent_cni_requests_total", command="ADD", code="0") == 1
    assert m.value("vpcnet_agent_cni_request_seconds_count", command="ADD") == 1
    assert pool(m) == {"total": pool_size, "free": pool_size - 1, "assigned": 1, "cooldown": 0}

    rt.check(pod)
    ips = [{**pod.result["ips"][0], "address": "10.99.99.99/32"}]  # not the IP ADD gave
    wrong = dataclasses.replace(pod, result={**pod.result, "ips": ips})
    with pytest.raises(CniError) as failed:
        rt.check(wrong)
    assert failed.value.code == ERR_CHECK_FAILED
    rt.delete(pod)
    m = scrape(port)
    assert m.value("vpcnet_agent_cni_requests_total", command="CHECK", code="0") == 1
    assert m.value("vpcnet_agent_cni_requests_total", command="CHECK", code=str(ERR_CHECK_FAILED)) == 1
    assert m.value("vpcnet_agent_cni_requests_total", command="DEL", code="0") >= 1
    assert pool(m) == {"total": pool_size, "free": pool_size - 1, "assigned": 0, "cooldown": 1}

    # Logs: every line is one JSON object naming the node; a request's lines name its
    # container, the ADD's also the ENI and IP it handed out.
    agent.stop()
    text = agent.log()
    assert text.strip()
    lines = json_lines(text)
    assert len(lines) == len([x for x in text.splitlines() if x.strip()]), "a line is not JSON"
    assert all(line["component"] == "agent" and line["node"] == name for line in lines)
    pod_lines = [line for line in lines if line.get("container") == pod.container_id]
    (add,) = [line for line in pod_lines if line.get("command") == "ADD"]
    assert add["code"] == 0 and add["ip"] == pod.ip and add["eni"].startswith("eni-")
    assert add["pod"] == f"{pod.namespace}/{pod.name}" and add["ifname"] == "eth0"
    assert {line["code"] for line in pod_lines if line.get("command") == "CHECK"} == {
        0, ERR_CHECK_FAILED,
    }
