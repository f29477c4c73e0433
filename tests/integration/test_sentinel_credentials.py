"""``vpcnet credentials`` on a Sentinel-managed Redis (real redis-sentinel): the issuer
reaches the primary the sentinels name, as every other component does, so the node users
it creates live where the agents log in (and are created again there after a failover,
as ``vpcnet.state.acl_users`` relies on)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import redis

from vpcnet.cli.credentials_cmd import _build
from vpcnet.state.keys import ClusterKeys
from vpcnet_sim.embedded.sentinel import SentinelGroup


def test_the_issuer_builds_on_a_sentinel_url_and_its_users_log_in_on_the_named_primary(
    sentinels: SentinelGroup, cluster_name: str, kubeconfig_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VPCNET_REDIS_URL", sentinels.url)
    monkeypatch.setenv("VPCNET_CLUSTER_NAME", cluster_name)
    monkeypatch.setenv("VPCNET_KUBECONFIG", str(kubeconfig_path))
    args = argparse.Namespace(
        listen="127.0.0.1", port=0, tls_cert=None, tls_key=None, audience="vpcnet-credentials",
        agent_service_account="vpcnet-system/vpcnet-agent", ttl_seconds=3600.0, grace_seconds=300.0,
    )
    _issuer, server, users = _build(args)
    node = "ip-10-0-0-9.ec2.internal"
    try:
        credential = users.issue(node)
        primary = sentinels.named_primary_port()
        assert primary == sentinels.primary.port
        login = redis.Redis(port=primary, username=credential.username, password=credential.password,
                            socket_timeout=5)
        try:
            # The node's own keys take its writes: the user is the node's, on the primary.
            login.hset(ClusterKeys(cluster_name).node(node).agent, "ready", 1)
        finally:
            login.close()
    finally:
        users.revoke(node)
        server.stop()
        admin = sentinels.client()
        admin.delete(ClusterKeys(cluster_name).node(node).agent)
        admin.close()
