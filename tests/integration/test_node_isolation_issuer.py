"""The credential issuer over HTTP on loopback, with a real redis-server holding the
deployed ACL (the issuer logs in as its own ``credentials`` user): a token bound to a pod
on node A gets A's credential and only A's; other tokens are refused; passwords rotate."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.fixtures.acl_redis import CLUSTER, AclRedis, acl_redis_server
from vpcnet.cli.credentials_cmd import tls_context
from vpcnet.credentials.client import fetch_node_credential
from vpcnet.credentials.errors import CredentialDenied, CredentialUnavailable
from vpcnet.credentials.issuer import AUDIENCE, CredentialIssuer
from vpcnet.credentials.policy import service_account_username
from vpcnet.credentials.provider import NodeCredentialProvider
from vpcnet.credentials.server import CredentialServer
from vpcnet.credentials.wire import PATH
from vpcnet.errors import ConfigError
from vpcnet.state.acl_users import NodeAclUsers
from vpcnet.state.keys import ClusterKeys

AGENT_SA = service_account_username("vpcnet-system", "vpcnet-agent")
A_NODE, B_NODE = "ip-10-0-0-1.ec2.internal", "ip-10-0-0-2.ec2.internal"


@dataclass(frozen=True)
class Identity:
    username: str
    pod_name: str | None
    node_name: str | None


class Tokens:
    """Tokens and what a TokenReview says about them, for the tests of what the issuer
    does with the answer (HTTP, rotation, TLS, backoff). The review itself, by the real
    kube-apiserver, is tested in test_node_isolation_apiserver.py."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, Identity]] = {}
        self.down = False

    def mint(self, token: str, identity: Identity, audience: str = AUDIENCE) -> str:
        self._tokens[token] = (audience, identity)
        return token

    def __call__(self, token: str, audiences: Sequence[str]) -> Identity:
        if self.down:
            raise CredentialUnavailable("apiserver unreachable")
        audience, identity = self._tokens.get(token, ("", Identity("", None, None)))
        if audience not in audiences:
            raise CredentialDenied("token not authenticated for this audience", status=401)
        return identity


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Issuer:
    redis: AclRedis
    tokens: Tokens
    clock: Clock
    users: NodeAclUsers
    url: str


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[Issuer]:
    with acl_redis_server(tmp_path) as server:
        tokens, clock = Tokens(), Clock()
        users = NodeAclUsers(server.as_component("I"), CLUSTER, ttl_seconds=3600,
                             grace_seconds=300, clock=clock)
        http = CredentialServer(CredentialIssuer(tokens, users, agent_username=AGENT_SA))
        http.start()
        try:
            yield Issuer(server, tokens, clock, users, http.url)
        finally:
            http.stop()


def test_a_server_stopped_before_it_served_returns_and_frees_its_port(issuer: Issuer) -> None:
    # `vpcnet credentials` stops its server from a signal, which may come before the serve.
    server = CredentialServer(CredentialIssuer(issuer.tokens, issuer.users, agent_username=AGENT_SA))
    port = server.port
    stopper = threading.Thread(target=server.stop, daemon=True)
    stopper.start()
    stopper.join(10)
    assert not stopper.is_alive(), "stop() of a server never started blocked"
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # the port is free again


def post(url: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url + PATH, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def agent_token(issuer: Issuer, node: str, name: str = "") -> str:
    return issuer.tokens.mint(name or f"tok-{node}", Identity(AGENT_SA, f"vpcnet-agent-{node[:9]}", node))


def test_a_token_for_node_a_gets_a_credential_that_reaches_only_node_a(issuer: Issuer) -> None:
    cred = fetch_node_credential(issuer.url, agent_token(issuer, A_NODE))
    assert cred.node == A_NODE and cred.username == f"vpcnet-node:{CLUSTER}:{A_NODE}"
    node_a = issuer.redis.client(cred.username, cred.password)
    keys = ClusterKeys(CLUSTER)
    node_a.hset(keys.node(A_NODE).agent, "ready", 1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        node_a.hset(keys.node(B_NODE).agent, "ready", 1)


def test_the_node_comes_from_the_token_never_from_the_request(issuer: Issuer) -> None:
    token = agent_token(issuer, A_NODE)
    status, body = post(issuer.url + f"?node={B_NODE}", {"Authorization": f"Bearer {token}"},
                        json.dumps({"node": B_NODE}).encode())
    # The query string makes it another path: refused outright, nothing issued.
    assert status == 404
    status, body = post(issuer.url, {"Authorization": f"Bearer {token}",
                                     "Content-Type": "application/json"},
                        json.dumps({"node": B_NODE, "username": f"vpcnet-node:{CLUSTER}:{B_NODE}"}).encode())
    assert status == 200 and body["node"] == A_NODE
    assert body["username"] == f"vpcnet-node:{CLUSTER}:{A_NODE}"
    admin = issuer.redis.as_component("I")  # ACL GETUSER: the issuer's user may
    assert admin.execute_command("ACL", "GETUSER", f"vpcnet-node:{CLUSTER}:{B_NODE}") is None


@pytest.mark.parametrize(
    ("case", "identity", "audience", "status"),
    [
        ("wrong audience", Identity(AGENT_SA, "p", A_NODE), "https://kubernetes.default.svc", 401),
        ("another ServiceAccount", Identity(service_account_username("vpcnet-system", "vpcnet-workers"), "p", A_NODE), AUDIENCE, 403),
        ("agent SA of another namespace", Identity(service_account_username("default", "vpcnet-agent"), "p", A_NODE), AUDIENCE, 403),
        ("not bound to a pod", Identity(AGENT_SA, None, None), AUDIENCE, 403),
        ("bad node name", Identity(AGENT_SA, "p", "A*"), AUDIENCE, 403),
    ],
)
def test_tokens_that_are_not_an_agents_on_a_node_are_refused(
    issuer: Issuer, case: str, identity: Identity, audience: str, status: int
) -> None:
    token = issuer.tokens.mint(f"tok-{case}", identity, audience)
    with pytest.raises(CredentialDenied) as e:
        fetch_node_credential(issuer.url, token)
    assert e.value.status == status, case
    assert issuer.redis.as_component("I").execute_command("ACL", "GETUSER", issuer.users.username(A_NODE)) is None


def test_requests_without_a_valid_bearer_token_are_refused(issuer: Issuer) -> None:
    assert post(issuer.url, {})[0] == 401
    assert post(issuer.url, {"Authorization": "Basic dXNlcjpwdw=="})[0] == 401
    assert post(issuer.url, {"Authorization": "Bearer unknown"})[0] == 401
    assert post(issuer.url, {"Authorization": "Bearer " + "x" * 20_000})[0] == 401


def test_an_unreachable_apiserver_is_a_retryable_503(issuer: Issuer) -> None:
    issuer.tokens.down = True
    token = agent_token(issuer, A_NODE)
    assert post(issuer.url, {"Authorization": f"Bearer {token}"})[0] == 503
    with pytest.raises(CredentialUnavailable):
        fetch_node_credential(issuer.url, token)


def test_each_issue_rotates_and_the_old_password_lives_for_the_grace_period(issuer: Issuer) -> None:
    token = agent_token(issuer, A_NODE)
    first = fetch_node_credential(issuer.url, token)
    issuer.clock.now += 3600  # first one at its TTL: an agent may be reconnecting with it
    second = fetch_node_credential(issuer.url, token)
    assert second.password != first.password
    assert issuer.redis.client(first.username, first.password).ping()
    assert issuer.redis.client(second.username, second.password).ping()

    issuer.clock.now += 301  # first one: past TTL + grace
    third = fetch_node_credential(issuer.url, token)
    with pytest.raises(redis.AuthenticationError):
        issuer.redis.client(first.username, first.password).ping()
    for live in (second, third):
        assert issuer.redis.client(live.username, live.password).ping()


def test_a_node_that_stops_asking_loses_its_user(issuer: Issuer) -> None:
    cred_a = fetch_node_credential(issuer.url, agent_token(issuer, A_NODE))
    conn = issuer.redis.client(cred_a.username, cred_a.password)
    assert conn.ping()  # an open, authenticated connection
    issuer.clock.now += 1800
    cred_b = fetch_node_credential(issuer.url, agent_token(issuer, B_NODE))
    issuer.clock.now += 1800 + 301  # A: past TTL + grace; B: not yet
    assert issuer.users.sweep() == 1
    admin = issuer.redis.as_component("I")  # ACL GETUSER: the issuer's user may
    assert admin.execute_command("ACL", "GETUSER", cred_a.username) is None
    with pytest.raises(redis.ConnectionError):
        conn.ping()  # deleting the user ended its connection too
    assert issuer.redis.client(cred_b.username, cred_b.password).ping()


def test_passwords_per_node_are_capped(issuer: Issuer) -> None:
    token = agent_token(issuer, A_NODE)
    creds = []
    for _ in range(6):  # an agent restarting in a loop, within one TTL
        creds.append(fetch_node_credential(issuer.url, token))
        issuer.clock.now += 1
    admin = issuer.redis.as_component("I")  # ACL GETUSER: the issuer's user may
    info = admin.execute_command("ACL", "GETUSER", creds[0].username)
    assert len(info[b"passwords"]) == issuer.users.max_passwords
    with pytest.raises(redis.AuthenticationError):
        issuer.redis.client(creds[0].username, creds[0].password).ping()
    assert issuer.redis.client(creds[-1].username, creds[-1].password).ping()


def self_signed(directory: Path) -> tuple[str, str]:
    """The certificate docs/deploy.md makes (its own CA), here for 127.0.0.1."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=vpcnet-credentials",
         "-addext", "subjectAltName=DNS:vpcnet-credentials.vpcnet-system.svc,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


def test_over_tls_the_agent_verifies_the_issuer(issuer: Issuer, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = tls_context(cert, key, "0.0.0.0")
    assert context is not None
    server = CredentialServer(CredentialIssuer(issuer.tokens, issuer.users, agent_username=AGENT_SA),
                              ssl_context=context)
    server.start()
    try:
        token = agent_token(issuer, A_NODE)
        assert server.url.startswith("https://")
        cred = fetch_node_credential(server.url, token, ca_file=cert)
        assert cred.node == A_NODE
        with pytest.raises(CredentialUnavailable):  # an issuer it cannot verify
            fetch_node_credential(server.url, token)
        with pytest.raises(CredentialUnavailable):  # no plain HTTP on the TLS port
            fetch_node_credential(server.url.replace("https", "http"), token)
    finally:
        server.stop()


def test_plain_http_is_refused_off_loopback(tmp_path: Path) -> None:
    assert tls_context(None, None, "127.0.0.1") is None
    with pytest.raises(ConfigError, match="off loopback"):
        tls_context(None, None, "0.0.0.0")
    with pytest.raises(ConfigError, match="go together"):
        tls_context(str(tmp_path / "c"), None, "0.0.0.0")


def test_the_agent_backs_off_from_an_issuer_that_fails(issuer: Issuer, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(agent_token(issuer, A_NODE))
    clock = Clock()
    provider = NodeCredentialProvider(
        A_NODE, str(token_file), lambda t: fetch_node_credential(issuer.url, t), clock=clock
    )
    issuer.tokens.down = True
    for _ in range(5):  # the agent's Redis code retrying: one request to the issuer
        with pytest.raises(redis.ConnectionError, match="no Redis credential"):
            provider.get_credentials()
    assert provider.attempts == 1
    clock.now += 1
    with pytest.raises(redis.ConnectionError):
        provider.get_credentials()
    assert provider.attempts == 2
    issuer.tokens.down = False
    clock.now += 1.5  # the backoff doubled to 2 s
    with pytest.raises(redis.ConnectionError):
        provider.get_credentials()
    assert provider.attempts == 2
    clock.now += 0.5
    user, password = provider.get_credentials()
    assert issuer.redis.client(user, password).ping() and provider.attempts == 3

    token_file.write_text("a-token-the-apiserver-refuses")
    clock.now += 3600  # TTL over: a refresh is due, and refused
    with pytest.raises(redis.ConnectionError, match="refused"):
        provider.get_credentials()
    clock.now += 59
    with pytest.raises(redis.ConnectionError):
        provider.get_credentials()
    assert provider.attempts == 4  # a refused token waits a full minute
