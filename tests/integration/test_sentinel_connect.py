"""``vpcnet.state.connection.connect``, the one client factory, against real servers:
the sentinel form reaches the primary, a credential provider replaces the URL's login
(both forms), and with no sentinel to ask a command fails within its bounded retry."""

from __future__ import annotations

import secrets
import time

import pytest
import redis

from tests.fixtures.redis import RedisServer, free_port
from tests.fixtures.sentinel import SentinelGroup
from vpcnet.errors import ConfigError
from vpcnet.state.connection import FAILOVER_RETRY, connect

pytestmark = pytest.mark.timeout(120)


def test_the_sentinel_form_reaches_the_primary_and_the_database(sentinels: SentinelGroup) -> None:
    key = f"vpcnet-test:{secrets.token_hex(4)}"
    client = connect(sentinels.url_for_db(5), socket_timeout=5)
    try:
        client.set(key, "x")
        direct = redis.Redis(port=sentinels.primary.port, password=sentinels.password, db=5)
        assert direct.get(key) == b"x"
        direct.close()
    finally:
        client.delete(key)
        client.close()


def _with_user(port: int, password: str | None, user: str, user_password: str) -> None:
    admin = redis.Redis(port=port, password=password)
    admin.acl_setuser(user, enabled=True, passwords=[f"+{user_password}"], keys=["vpcnet-cp:*"],
                      commands=["+@all"], reset=True)
    admin.close()


@pytest.mark.parametrize("form", ["sentinel", "server"])
def test_a_credential_provider_replaces_the_urls_login(
    form: str, sentinels: SentinelGroup, redis_server: RedisServer
) -> None:
    user, user_password = f"node-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    if form == "sentinel":
        _with_user(sentinels.primary.port, sentinels.password, user, user_password)
        url = sentinels.url  # carries the group's password, which the provider overrides
    else:
        _with_user(redis_server.port, None, user, user_password)
        url = redis_server.url
    good = connect(url, credential_provider=redis.UsernamePasswordCredentialProvider(user, user_password))
    assert good.acl_whoami() == user
    assert good.set("vpcnet-cp:k", "1")
    with pytest.raises(redis.ResponseError):  # only its own keys
        good.set("elsewhere", "1")
    good.close()
    bad = connect(url, credential_provider=redis.UsernamePasswordCredentialProvider(user, "wrong"))
    with pytest.raises(redis.AuthenticationError):
        bad.ping()
    bad.close()


def test_with_no_sentinel_to_ask_a_command_fails_within_its_bounded_retry() -> None:
    url = f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/vpcnet/0"
    client = connect(url, socket_timeout=1, socket_connect_timeout=0.5)
    start = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    elapsed = time.monotonic() - start
    # redis-py nests a connect's retry in the command's: one budget bounds both (connection
    # refused at once here, so no socket timeout adds to it).
    assert elapsed <= FAILOVER_RETRY.budget_seconds + 2, elapsed
    client.close()


def test_an_unsupported_url_is_refused_before_any_connection() -> None:
    with pytest.raises(ConfigError, match="Redis Cluster is not supported"):
        connect("redis-cluster://127.0.0.1:7000")
