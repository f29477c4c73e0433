"""Two ``vpcnet watcher`` processes with ``--metrics-port``: both export their own
metrics; only the Lease holder exports the cluster's per-node pools, read from Redis on
each scrape (so a sum over replicas counts every node once). Logs are JSON lines."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.fixtures import watcher as fx
from tests.fixtures.metrics import Scrape, json_lines, scrape, try_scrape
from tests.fixtures.redis import free_port
from tests.fixtures.watcher import wait_for, watcher_env
from vpcnet.domain import EniRecord
from vpcnet.settings import Settings
from vpcnet.state.keys import ClusterKeys
from vpcnet_sim.kube import KubeEmulator

kube_sim, broker, watcher_settings = fx.kube_sim, fx.broker, fx.watcher_settings

pytestmark = pytest.mark.timeout(120)


def _eni(eni_id: str, index: int, ips: int = 0, prefixes: tuple[str, ...] = ()) -> EniRecord:
    return EniRecord(
        eni_id=eni_id,
        mac=f"02:00:00:00:00:0{index}",
        device_index=index,
        subnet_id="subnet-1",
        subnet_cidr=ipaddress.IPv4Network("10.0.0.0/20"),
        primary_ip=ipaddress.IPv4Address(f"10.0.0.{10 + index}"),
        ips=tuple(ipaddress.IPv4Address(f"10.0.1.{index * 20 + i}") for i in range(ips)),
        prefixes=tuple(ipaddress.IPv4Network(p) for p in prefixes),
        is_primary=index == 0,
    )


def _seed(client: redis.Redis[bytes], cluster: str) -> None:
    """What workers and agents would have written for two nodes."""
    keys = ClusterKeys(cluster)
    n1, n2 = keys.node("n1"), keys.node("n2")
    client.sadd(keys.nodes, "n1", "n2")
    client.hset(n1.node, mapping={"phase": "ready", "instance_id": "i-1", "generation": 3})
    client.hset(n1.enis, mapping={
        e.eni_id: e.to_json()
        for e in (_eni("eni-a", 0, ips=3), _eni("eni-b", 1, prefixes=("10.0.2.16/28",)))
    })
    client.hset(n1.agent, mapping={"ready": 1, "generation": 3, "heartbeat": 1700000000.5,
                                   "free": 14, "assigned": 4, "cooldown": 1})
    client.hset(n2.node, mapping={"phase": "provisioning", "instance_id": "i-2"})


@pytest.fixture
def watchers(watcher_settings: Settings, tmp_path: Path) -> Iterator[list[tuple[int, Path]]]:
    env = {**os.environ, **watcher_env(watcher_settings)}
    procs: list[subprocess.Popen[bytes]] = []
    out = []
    for i in range(2):
        port, log_path = free_port(), tmp_path / f"watcher{i}.log"
        with open(log_path, "wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "vpcnet.cli.main", "watcher", f"--metrics-port={port}",
                 "--metrics-address=127.0.0.1"],
                env=env, stdout=log, stderr=log,
            ))
        out.append((port, log_path))
    try:
        yield out
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_only_the_leader_exports_the_cluster_pools(
    watcher_settings: Settings, kube_sim: KubeEmulator, watchers: list[tuple[int, Path]],
) -> None:
    client: redis.Redis[bytes] = redis.Redis.from_url(watcher_settings.redis_url)
    _seed(client, watcher_settings.cluster_name)
    for name, iid in (("n1", "i-1"), ("n2", "i-2")):
        kube_sim.add_node(name, provider_id=f"aws:///us-east-1a/{iid}")

    def leader() -> tuple[int, Scrape] | None:
        scrapes = [(port, try_scrape(port)) for port, _ in watchers]
        up = [(port, m) for port, m in scrapes if m is not None]
        leading = [(port, m) for port, m in up if m.total("vpcnet_watcher_leader") == 1]
        return leading[0] if len(up) == 2 and len(leading) == 1 else None

    port, m = wait_for(leader, 60, "one replica leading")
    assert m.by("vpcnet_node_pool_ips", "state", node="n1") == {
        "total": 19, "free": 14, "assigned": 4, "cooldown": 1,
    }
    assert not list(m.select("vpcnet_node_pool_ips", node="n2"))  # no agent report yet
    assert m.value("vpcnet_node_capacity_ips", node="n1") == 3 + 16
    assert m.value("vpcnet_node_capacity_ips", node="n2") == 0
    assert m.value("vpcnet_node_agent_ready", node="n1") == 1
    assert m.value("vpcnet_node_agent_heartbeat_timestamp_seconds", node="n1") == 1700000000.5
    assert m.value("vpcnet_nodes", phase="ready") == 1
    assert m.value("vpcnet_nodes", phase="provisioning") == 1
    assert m.value("vpcnet_nodes", phase="error") == 0
    assert m.value("vpcnet_cluster_state_up") == 1

    # The other replica exports its own metrics, never the cluster view.
    (standby,) = [p for p, _ in watchers if p != port]
    s = scrape(standby)
    assert s.value("vpcnet_watcher_leader") == 0
    assert not list(s.select("vpcnet_node_pool_ips"))
    assert not list(s.select("vpcnet_nodes"))

    # A change in Redis shows at the next scrape.
    client.hset(ClusterKeys(watcher_settings.cluster_name).node("n1").agent, "assigned", 5)
    assert scrape(port).value("vpcnet_node_pool_ips", node="n1", state="assigned") == 5
    client.close()

    for _, log_path in watchers:
        lines = json_lines(log_path.read_text())
        assert lines and all(line["component"] == "watcher" for line in lines)
    assert any(line["event"] == "watcher.start" for _, p in watchers for line in json_lines(p.read_text()))
