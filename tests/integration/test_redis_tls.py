"""Every component talks to a TLS-only, password-protected redis-server through a
``rediss://`` URL (the external-Redis set-up of docs/deploy.md): the agent's mirror, the
control plane's state, the watcher's claims and task sender, the workers' Celery app (a
real worker process consumes over TLS), beat's lock; nothing connects in clear text."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from celery import Celery

from tests.fixtures.celery import REPO, settings_env
from tests.fixtures.redis import free_port
from vpcnet.agent.ipam import Ipam
from vpcnet.agent.redis_sync import AgentReport, RedisSync
from vpcnet.control.context import ControlContext
from vpcnet.kube.watchstate import TaskSender, WatcherState
from vpcnet.settings import Settings
from vpcnet.state.keys import ClusterKeys
from vpcnet.tasknames import REFRESH_LIMITS

PASSWORD = "tls-test-pw"


@dataclass(frozen=True)
class TlsRedis:
    port: int
    ca: Path

    @property
    def url(self) -> str:
        query = f"ssl_cert_reqs=required&ssl_ca_certs={quote(str(self.ca))}"
        return f"rediss://:{PASSWORD}@127.0.0.1:{self.port}/0?{query}"

    def client(self) -> redis.Redis[bytes]:
        return redis.Redis.from_url(self.url)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    binary = shutil.which("redis-server")
    assert binary and shutil.which("openssl"), "redis-server and openssl are needed"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
             "/CN=vpcnet-test-ca", "-keyout", "ca.key", "-out", "ca.crt", cwd=tmp_path)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=tmp_path)
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", "server.crt",
             cwd=tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(tmp_path / "server.crt"),
         "--tls-key-file", str(tmp_path / "server.key"),
         "--tls-ca-cert-file", str(tmp_path / "ca.crt"), "--tls-auth-clients", "no",
         "--requirepass", PASSWORD, "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = TlsRedis(port, tmp_path / "ca.crt")
    try:
        probe = server.client()
        for _ in range(200):
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None, "redis-server refused the TLS options"
                time.sleep(0.05)
        probe.close()
        yield server
    finally:
        proc.terminate()
        proc.wait(10)


def test_plain_text_and_wrong_ca_are_refused(tls_redis: TlsRedis, tmp_path: Path) -> None:
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=tls_redis.port, password=PASSWORD, socket_timeout=2).ping()
    other = tmp_path / "other"
    other.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
             "/CN=someone-else", "-keyout", "k", "-out", "ca.crt", cwd=other)
    wrong = tls_redis.url.replace(quote(str(tls_redis.ca)), quote(str(other / "ca.crt")))
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(wrong).ping()


class _NoKube:
    """The control context's Kubernetes port; nothing here reaches Kubernetes."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"Kubernetes was not expected to be called ({name})")


def test_every_component_speaks_tls(tls_redis: TlsRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = f"t{uuid.uuid4().hex[:8]}"
    settings = Settings(cluster_name=cluster, redis_url=tls_redis.url,
                        ec2_endpoint_url="http://127.0.0.1:9")
    keys = ClusterKeys(cluster)
    check = tls_redis.client()

    # Agent: mirror and readiness report.
    sync = RedisSync(tls_redis.url, cluster, "node-a", Ipam(cooldown_seconds=1),
                     wake=threading.Event())
    try:
        assert sync.read_node().generation == 0
        sync.flush()
        sync.report(AgentReport(True, 1, Ipam(cooldown_seconds=1).stats(), "test"))
    finally:
        sync.stop()
    assert check.hget(keys.node("node-a").agent, "ready") == b"1"

    # Control plane (workers, CLI): state, lock, the rate limiter's client.
    ctx = ControlContext.from_settings(settings, kube=_NoKube())
    ctx.state.set_fields("node-a", {"phase": "pending"})
    with ctx.state.locked("node-a"):
        assert ctx.state.lock_held("node-a")
    assert ctx.state.list_nodes() == ["node-a"]

    # Watcher: dedup claims and the task sender.
    state = WatcherState(settings)
    assert state.claim("node-a", "provision", "i-1").won
    sender = TaskSender(settings)
    try:
        sender.send(REFRESH_LIMITS, [])
    finally:
        sender.close()
    assert check.llen("ec2") == 1

    # Beat: the scheduler lock.
    monkeypatch.setenv("VPCNET_REDIS_URL", tls_redis.url)
    monkeypatch.setenv("VPCNET_CLUSTER_NAME", cluster)
    from beat import LockedScheduler
    from workers import celery_config

    app = Celery("tls-test", set_as_current=False)
    app.conf.update(celery_config(settings))
    scheduler = LockedScheduler(app=app, lazy=True)
    assert scheduler.holds_lock()
    assert check.exists(keys.beat_lock)
    # The workers' app publishes and reads results over TLS too.
    app.send_task(REFRESH_LIMITS, args=[])
    assert check.llen("ec2") == 2
    assert app.backend.client.ping()
    check.close()


def test_a_worker_process_consumes_over_tls(tls_redis: TlsRedis, tmp_path: Path) -> None:
    settings = Settings(cluster_name=f"t{uuid.uuid4().hex[:8]}", redis_url=tls_redis.url,
                        ec2_endpoint_url="http://127.0.0.1:9")
    sender = TaskSender(settings)
    try:
        for _ in range(3):
            sender.send(REFRESH_LIMITS, [])
    finally:
        sender.close()
    check = tls_redis.client()
    assert check.llen("ec2") == 3
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "worker.log"
    celery = str(Path(sys.executable).with_name("celery"))
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [celery, "-A", "workers", "worker", "--concurrency", "2", "--loglevel", "INFO",
             "--hostname", f"tls@{uuid.uuid4().hex[:6]}"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while check.llen("ec2") and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        assert check.llen("ec2") == 0, log.read_text()[-3000:]
    finally:
        proc.terminate()
        proc.wait(30)
        check.close()
    text = log.read_text()
    assert "Connected to rediss://" in text
    assert PASSWORD not in text
