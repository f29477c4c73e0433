"""The Redis ACL of docs/deploy.md, loaded by a real redis-server with the manifests'
redis.conf: no passwordless access, and the agent's user kept out of the broker."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.fixtures.redis import free_port
from vpcnet.state.keys import ClusterKeys

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "prod-eu"
PASSWORDS = {"W": "watcher-pw", "R": "workers-pw", "B": "beat-pw", "F": "flower-pw", "A": "agent-pw"}


def acl_from_docs() -> str:
    """The users.acl heredoc of docs/deploy.md, with its shell substitutions applied."""
    doc = (REPO / "docs" / "deploy.md").read_text()
    m = re.search(r"cat > /tmp/users\.acl <<ACL\n(.*?)\nACL\n", doc, flags=re.S)
    assert m, "the ACL heredoc is missing from docs/deploy.md"
    text = m.group(1).replace("$CLUSTER", CLUSTER)
    return re.sub(
        r"\$\(sha \$(\w)\)", lambda v: hashlib.sha256(PASSWORDS[v.group(1)].encode()).hexdigest(), text
    )


def redis_conf() -> str:
    docs = yaml.safe_load_all((REPO / "manifests" / "base" / "redis.yaml").read_text())
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    conf: str = cm["data"]["redis.conf"]
    return conf


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server not found; run scripts/setup.sh"
    (tmp_path / "users.acl").write_text(acl_from_docs() + "\n")
    port = free_port()
    conf = redis_conf().replace("/etc/redis/acl/users.acl", str(tmp_path / "users.acl"))
    conf = conf.replace("dir /data", f"dir {tmp_path}").replace("port 6379", f"port {port}")
    (tmp_path / "redis.conf").write_text(conf + "\nbind 127.0.0.1\n")
    proc = subprocess.Popen([binary, str(tmp_path / "redis.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        probe = redis.Redis(port=port, username="workers", password=PASSWORDS["R"],
                            socket_connect_timeout=0.2)
        for _ in range(200):
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None, "redis-server refused the config or the ACL file"
                time.sleep(0.05)
        probe.close()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def client(port: int, user: str | None, key: str | None) -> redis.Redis:
    # No retries: redis-py would retry an AuthenticationError (a ConnectionError) with backoff.
    return redis.Redis(port=port, username=user, password=PASSWORDS[key] if key else None,
                       retry=Retry(NoBackoff(), 0))


def test_no_passwordless_access(acl_redis: int) -> None:
    with pytest.raises(redis.AuthenticationError):
        client(acl_redis, None, None).ping()
    with pytest.raises(redis.AuthenticationError):
        client(acl_redis, "agent", "R").ping()  # wrong password


def test_control_plane_users_can_use_the_broker(acl_redis: int) -> None:
    for user, key in (("workers", "R"), ("watcher", "W"), ("beat", "B"), ("flower", "F")):
        c = client(acl_redis, user, key)
        c.lpush("ec2", "task")
        c.hset("unacked", "t", "x")
        c.publish("celeryev", "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        client(acl_redis, "workers", "R").flushall()  # dangerous commands are off


def test_agent_reaches_only_its_clusters_node_keys(acl_redis: int) -> None:
    agent = client(acl_redis, "agent", "A")
    node = ClusterKeys(CLUSTER).node("ip-10-0-0-1")
    agent.hset(node.agent, mapping={"ready": 1})
    agent.hset(node.assigned, "10.0.0.5", "{}")
    agent.publish(ClusterKeys(CLUSTER).agent_ready_channel, "ip-10-0-0-1")
    agent.get(ClusterKeys(CLUSTER).schema)  # cluster-wide keys: read
    denied = [
        lambda: agent.set(ClusterKeys(CLUSTER).schema, "9"),  # ... but not write
        lambda: agent.lpush("ec2", "forged-task"),  # the broker
        lambda: agent.hset(ClusterKeys("other").node("n").agent, "ready", 1),  # other cluster
        lambda: agent.flushall(),
    ]
    for attempt in denied:
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
