"""The Sentinel URL form, and the Celery broker/backend settings derived from it."""

from __future__ import annotations

import pytest

from vpcnet.errors import ConfigError
from vpcnet.settings import AgentSettings, Settings
from vpcnet.state.broker import celery_broker_config
from vpcnet.state.redis_url import SentinelEndpoint, parse_sentinel_url, validate_redis_url


def test_a_full_sentinel_url_parses_into_every_part() -> None:
    ep = parse_sentinel_url(
        "redis+sentinel://workers:s%40cret@10.1.0.5:26380,sentinel-b,[fd00::7]:26381"
        "/vpcnet-ha/3?sentinel_password=sp&sentinel_username=su&min_other_sentinels=1"
    )
    assert ep == SentinelEndpoint(
        sentinels=(("10.1.0.5", 26380), ("sentinel-b", 26379), ("fd00::7", 26381)),
        service="vpcnet-ha", db=3, username="workers", password="s@cret",
        sentinel_username="su", sentinel_password="sp", min_other_sentinels=1,
    )
    assert ep.tls_options() == {}


def test_password_only_and_default_db() -> None:
    ep = parse_sentinel_url("redis+sentinel://:pw@127.0.0.1:1/mymaster")
    assert (ep.username, ep.password, ep.db, ep.service) == (None, "pw", 0, "mymaster")


def test_tls_options_need_rediss_sentinel() -> None:
    ep = parse_sentinel_url("rediss+sentinel://h:1/m?ssl_ca_certs=/ca.pem&ssl_cert_reqs=optional")
    assert ep.tls and ep.tls_options() == {"ssl_ca_certs": "/ca.pem", "ssl_cert_reqs": "optional"}
    with pytest.raises(ConfigError, match="need rediss"):
        parse_sentinel_url("redis+sentinel://h:1/m?ssl_ca_certs=/ca.pem")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel:///m", "names no sentinel"),
        ("redis+sentinel://h:1", "path must be"),
        ("redis+sentinel://h:1/m/0/extra", "path must be"),
        ("redis+sentinel://h:1/m/x", "database 'x' is not a number"),
        ("redis+sentinel://h:70000/m", "outside 1..65535"),
        ("redis+sentinel://h:port/m", "port 'port' is not a number"),
        ("redis+sentinel://:1/m", "empty host"),
        ("redis+sentinel://h:1/m?master=x", "unknown option"),
        ("rediss+sentinel://h:1/m?ssl_cert_reqs=maybe", "ssl_cert_reqs must be"),
        ("redis+sentinel://h:1/m?min_other_sentinels=-1", "must not be negative"),
    ],
)
def test_bad_sentinel_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_sentinel_url(url)


@pytest.mark.parametrize("url", ["redis://h:6379/0", "rediss://h/1", "unix:///run/redis.sock",
                                 "redis+sentinel://h/m"])
def test_accepted_forms(url: str) -> None:
    validate_redis_url(url)


@pytest.mark.parametrize("url", ["redis-cluster://h:7000", "sentinel://h:26379", "h:6379", ""])
def test_other_forms_are_refused_at_start_up(url: str) -> None:
    with pytest.raises(ConfigError, match="unsupported scheme"):
        Settings(redis_url=url).validate()
    with pytest.raises(ConfigError, match="unsupported scheme"):
        AgentSettings(node_name="n", redis_url=url).validate()
    with pytest.raises(ConfigError, match="VPCNET_BROKER_URL"):
        Settings(broker_url=url or "x").validate()


def test_celery_gets_kombus_sentinel_transport_from_the_same_url() -> None:
    config = celery_broker_config(
        "redis+sentinel://:p%3Bw@10.0.0.1:26379,10.0.0.2:26379/vpcnet/12?sentinel_password=sp", 3600
    )
    url = "sentinel://:p%3Bw@10.0.0.1:26379/12;sentinel://:p%3Bw@10.0.0.2:26379/12"
    options = {
        "master_name": "vpcnet",
        "min_other_sentinels": 0,
        "sentinel_kwargs": {"socket_timeout": 5, "socket_connect_timeout": 5,
                            "password": "sp", "username": None},
        "visibility_timeout": 3600,
    }
    assert config == {
        "broker_url": url,
        "result_backend": url,
        "broker_transport_options": options,
        "result_backend_transport_options": options,
    }


def test_a_single_server_url_goes_to_celery_unchanged() -> None:
    config = celery_broker_config("redis://:pw@h:6379/12", 60)
    assert config["broker_url"] == config["result_backend"] == "redis://:pw@h:6379/12"
    assert config["broker_transport_options"] == {"visibility_timeout": 60}
