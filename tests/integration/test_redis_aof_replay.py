"""Transactions survive a restart of the shipped Redis (manifests' redis.conf + the ACL of
docs/deploy.md), replayed from its AOF by a real redis-server.

Redis replays a MULTI/EXEC from the AOF as the ``default`` user and EXEC re-checks that
user's command and key permissions (redis/redis#14541, fixed upstream by #14545 after
7.4.2): with ``user default off`` and no permissions every transaction is dropped while
plain writes survive. A Lua script with more than one write is propagated as a
MULTI/EXEC too, so ``write_node`` is as exposed as a pipeline.
"""

from __future__ import annotations

import ipaddress
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.fixtures.acl_redis import CLUSTER, PASSWORDS, acl_from_docs, redis_conf
from vpcnet.agent.ipam import AttachmentKey, Ipam
from vpcnet.agent.redis_sync import RedisSync
from vpcnet.domain import EniRecord, NodePhase
from vpcnet.state.acl_users import NodeAclUsers
from vpcnet.state.control import ControlState
from vpcnet_sim.embedded.procs import free_port, wait_for

pytestmark = pytest.mark.timeout(120)

A = ipaddress.IPv4Address
NODE = "ip-10-0-16-4"
ENI = EniRecord(
    "eni-1", "0a:00:00:00:00:01", 1, "subnet-1", ipaddress.IPv4Network("10.0.16.0/20"),
    A("10.0.16.4"), ips=(A("10.0.16.5"), A("10.0.16.6"), A("10.0.16.7")),
)


class ShippedRedis:
    """redis-server with the shipped redis.conf and ACL, restartable on the same AOF."""

    def __init__(self, workdir: Path, *, fsync_always: bool) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server not found; run scripts/setup.sh"
        self.binary = binary
        self.port = free_port()
        self.conf = workdir / "redis.conf"
        (workdir / "users.acl").write_text(acl_from_docs() + "\n")
        conf = redis_conf().replace("/etc/redis/acl/users.acl", str(workdir / "users.acl"))
        conf = conf.replace("dir /data", f"dir {workdir}").replace("port 6379", f"port {self.port}")
        if fsync_always:
            # kill -9 must not race the everysec writer: every acknowledged write is on disk.
            assert "appendfsync everysec" in conf
            conf = conf.replace("appendfsync everysec", "appendfsync always")
        self.conf.write_text(conf + "\nbind 127.0.0.1\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, user: str, key: str) -> str:
        return f"redis://{user}:{PASSWORDS[key]}@127.0.0.1:{self.port}/0"

    def client(self, user: str, key: str) -> redis.Redis[bytes]:
        return redis.Redis.from_url(self.url(user, key), socket_connect_timeout=0.5)

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = self.client("workers", "R")

        def up() -> bool:
            try:
                # PING is refused with LOADING until the AOF is replayed.
                return bool(probe.ping())
            except (redis.ConnectionError, redis.BusyLoadingError):
                assert self.proc is not None and self.proc.poll() is None, \
                    "redis-server refused the config or the ACL file"
                return False

        try:
            wait_for(up, 10, f"redis-server on port {self.port}")
        finally:
            probe.close()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """SIGTERM is what the kubelet sends (Redis flushes the AOF and exits); SIGKILL a
        crash or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture(params=[signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def restart_signal(request: pytest.FixtureRequest) -> signal.Signals:
    sig: signal.Signals = request.param
    return sig


@pytest.fixture
def shipped_redis(tmp_path: Path, restart_signal: signal.Signals) -> Iterator[ShippedRedis]:
    server = ShippedRedis(tmp_path, fsync_always=restart_signal is signal.SIGKILL)
    server.start()
    yield server
    server.stop(signal.SIGKILL)


def test_transactions_scripts_and_the_agent_mirror_survive_a_restart(
    shipped_redis: ShippedRedis, restart_signal: signal.Signals
) -> None:
    workers = shipped_redis.client("workers", "R")
    state = ControlState(workers, CLUSTER)
    keys = state.node_keys(NODE)
    # The control plane: a set_fields pipeline that registers the node (MULTI/EXEC; a
    # transaction with a single effective write is propagated without MULTI, so it must
    # be a new node) and a fenced write_node (EVALSHA; its writes propagate as MULTI/EXEC).
    state.set_fields(NODE, {"phase": "provisioning"})
    with state.locked(NODE, ttl_seconds=60) as token:
        generation = state.write_node(NODE, {"instance_id": "i-0abc"}, [ENI], lock_token=token)
    # The agent, logged in as its own user, mirrors a pod's ADD, then another pod's ADD
    # and the first one's DEL (each flush one MULTI/EXEC).
    ipam = Ipam(cooldown_seconds=30)
    ipam.set_enis([ENI])
    first = ipam.allocate(AttachmentKey("c1", "eth0"), "default", "p1").ip
    # The node's own ACL user, as the credential issuer creates it.
    cred = NodeAclUsers(shipped_redis.client("credentials", "I"), CLUSTER).issue(NODE)
    agent_url = (f"redis://{quote(cred.username, safe='')}:{quote(cred.password, safe='')}"
                 f"@127.0.0.1:{shipped_redis.port}/0")
    agent = RedisSync(agent_url, CLUSTER, NODE, ipam, wake=threading.Event())
    agent.flush()
    second = ipam.allocate(AttachmentKey("c2", "eth0"), "default", "p2").ip
    ipam.release(AttachmentKey("c1", "eth0"))
    agent.flush()
    workers.set("plain-write", "1")  # not in a transaction: replays even with the old ACL
    workers.close()

    shipped_redis.stop(restart_signal)
    shipped_redis.start()

    c = shipped_redis.client("workers", "R")
    assert c.get("plain-write") == b"1", "the AOF was not replayed at all"
    node = ControlState(c, CLUSTER).read_node(NODE)
    fields = node.fields if node else {}
    mirrored = {k.decode() for k in c.hkeys(keys.assigned)}
    cooling = {m.decode() for m in c.zrange(keys.cooldown, 0, -1)}
    lost = [
        what for what, survived in (
            ("set_fields (MULTI)", fields.get("phase") == NodePhase.PROVISIONING
             and c.sismember(state.keys.nodes, NODE) and c.exists(state.keys.schema)),
            ("write_node (EVALSHA)", node is not None and node.generation == generation
             and node.instance_id == "i-0abc" and node.enis == (ENI,)),
            ("the agent's mirror (MULTI)", mirrored == {str(second)} and cooling == {str(first)}),
        ) if not survived
    ]
    assert lost == [], f"lost on restart ({restart_signal.name}): {lost}"


def test_the_default_user_stays_unusable(
    shipped_redis: ShippedRedis, restart_signal: signal.Signals
) -> None:
    """It keeps the permissions the replay needs, but nobody can log in as it, before or
    after a restart."""
    no_retry = Retry(NoBackoff(), 0)
    for restart in (False, True):
        if restart:
            shipped_redis.stop(restart_signal)
            shipped_redis.start()
        for password in (None, "", "nopass", PASSWORDS["R"]):
            c = redis.Redis(port=shipped_redis.port, username="default", password=password,
                            retry=no_retry)
            with pytest.raises(redis.AuthenticationError):
                c.ping()
            c.close()
