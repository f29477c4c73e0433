"""Inside the cooldown (real agent CNI server, real plugin exec): STATUS says a pod can
start while IPs are coming back within the ADD's budget, and the ADD waits for the first
IP to leave the cooldown instead of failing."""

from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.fixtures.cni import cni_env, exec_plugin, plugin_script

POOL = 49  # one ENI of the SimNode


def test_status_and_add_inside_the_cooldown(make_cni_node: Any) -> None:
    sim = make_cni_node(POOL, cooldown_seconds=8.0)
    plugin = plugin_script()
    pods = [sim.new_pod()[1] for _ in range(POOL)]

    def add(i: int) -> int:
        return exec_plugin(plugin, cni_env("ADD", f"c{i:03d}", pods[i]), sim.conf())[0]

    def delete(i: int) -> int:
        return exec_plugin(plugin, cni_env("DEL", f"c{i:03d}", pods[i]), sim.conf())[0]

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(add, range(POOL))) == [0] * POOL
        rc, err, _ = exec_plugin(plugin, cni_env("STATUS"), sim.conf())
        assert rc == 1 and err["code"] == 50  # all assigned, nothing can come: the only 50
        assert list(pool.map(delete, range(POOL))) == [0] * POOL
    assert len(sim.checkpoint()["cooldown"]) == POOL  # every IP cooling down, none free
    # A budget shorter than the cooldown: no IP can come in time, so STATUS says 50 ...
    rc, err, _ = exec_plugin(plugin, cni_env("STATUS"), sim.conf(timeoutSeconds=2))
    assert rc == 1 and err["code"] == 50 and "none can come" in err["details"], err
    # ... and with the default one it says a pod can start, and an ADD does.
    rc, out, _ = exec_plugin(plugin, cni_env("STATUS"), sim.conf())
    assert rc == 0, out
    netns = sim.new_pod()[1]
    rc, res, _ = exec_plugin(plugin, cni_env("ADD", "late", netns), sim.conf())
    assert rc == 0, res
    assert ipaddress.IPv4Address(res["ips"][0]["address"].split("/")[0]) in sim.pool_ips()
