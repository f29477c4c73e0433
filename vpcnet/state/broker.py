"""The Celery broker and result backend settings, derived from vpcnet's Redis URL (pure).

One server (``redis://``, ``rediss://``, ``unix://``): Celery takes the URL as it is.
Sentinel (``redis+sentinel://…``, ``vpcnet.state.redis_url``): kombu's sentinel transport
and Celery's sentinel result backend, whose form is one ``sentinel://`` URL per sentinel,
``;``-separated (the primary's credentials and database on each), with ``master_name``
and the sentinels' own connection options in the transport options. Both ask the
sentinels for the primary on every reconnect, so a worker, beat and the watcher's sender
follow a failover without a restart.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote

from vpcnet.state.redis_url import SentinelEndpoint, is_sentinel_url, parse_sentinel_url

_CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


def kombu_sentinel_url(ep: SentinelEndpoint) -> str:
    auth = ""
    if ep.username or ep.password:
        auth = f"{quote(ep.username or '', safe='')}:{quote(ep.password or '', safe='')}@"
    return ";".join(f"sentinel://{auth}{_host(h)}:{p}/{ep.db}" for h, p in ep.sentinels)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def sentinel_transport_options(ep: SentinelEndpoint) -> dict[str, Any]:
    """What kombu's SentinelChannel and Celery's SentinelBackend need beyond the URL."""
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 5}
    if ep.sentinel_password is not None:
        sentinel_kwargs.update(password=ep.sentinel_password, username=ep.sentinel_username)
    if ep.tls:
        sentinel_kwargs.update(ssl=True, **ep.tls_options())
    return {"master_name": ep.service, "min_other_sentinels": ep.min_other_sentinels,
            "sentinel_kwargs": sentinel_kwargs}


def _ssl_options(ep: SentinelEndpoint) -> dict[str, Any]:
    opts: dict[str, Any] = {k: v for k, v in ep.tls_options().items() if k != "ssl_cert_reqs"}
    opts["ssl_cert_reqs"] = _CERT_REQS[ep.ssl_cert_reqs]
    return opts


def celery_broker_config(url: str, visibility_timeout: int) -> dict[str, Any]:
    """``broker_url``, ``result_backend`` and their transport (and TLS) options for ``url``."""
    if not is_sentinel_url(url):
        return {
            "broker_url": url,
            "result_backend": url,
            "broker_transport_options": {"visibility_timeout": visibility_timeout},
            "result_backend_transport_options": {"visibility_timeout": visibility_timeout},
        }
    ep = parse_sentinel_url(url)
    kombu_url = kombu_sentinel_url(ep)
    options = sentinel_transport_options(ep)
    config: dict[str, Any] = {
        "broker_url": kombu_url,
        "result_backend": kombu_url,
        "broker_transport_options": {**options, "visibility_timeout": visibility_timeout},
        "result_backend_transport_options": {**options, "visibility_timeout": visibility_timeout},
    }
    if ep.tls:
        config["broker_use_ssl"] = _ssl_options(ep)
        config["redis_backend_use_ssl"] = _ssl_options(ep)
    return config


__all__ = ["celery_broker_config", "kombu_sentinel_url", "sentinel_transport_options"]
