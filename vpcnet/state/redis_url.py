"""The Redis endpoint forms vpcnet accepts, parsed once (pure: no I/O, no redis import).

- ``redis://[user:password@]host:port/<db>``, ``rediss://…`` (TLS), ``unix:///path?db=N``:
  one server, as redis-py reads them (an ElastiCache primary endpoint is one of these:
  its DNS name follows a failover).
- Sentinel, defined here::

      redis+sentinel://[user:password@]host1:26379,host2:26379,…/<service>[/<db>][?options]
      rediss+sentinel://…   (TLS to the sentinels and to the primary)

  ``user:password`` authenticate to the primary (Redis ACL user or ``requirepass``);
  the sentinels are asked which server is the primary of ``<service>`` on every new
  connection, so clients follow a failover. A port left out is 26379, ``<db>`` is 0.
  Options: ``sentinel_username``, ``sentinel_password`` (the sentinels' own
  ``requirepass``/ACL, none by default), ``min_other_sentinels`` (a sentinel that sees
  fewer peers is not believed; default 0) and, with ``rediss+sentinel``, ``ssl_ca_certs``,
  ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs`` (``required`` | ``optional`` | ``none``).

Redis Cluster is not a supported form.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from vpcnet.errors import ConfigError

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SERVER_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_SENTINEL_PORT = 26379
_OPTIONS = frozenset({
    "sentinel_username", "sentinel_password", "min_other_sentinels",
    "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs",
})
_TLS_OPTIONS = frozenset({"ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs"})
_CERT_REQS = ("required", "optional", "none")


@dataclass(frozen=True, slots=True)
class SentinelEndpoint:
    """A Sentinel-monitored primary: where to ask, what to ask for, how to log in."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    min_other_sentinels: int = 0
    tls: bool = False
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: str = "required"

    def tls_options(self) -> dict[str, str]:
        """redis-py's ``ssl_*`` keyword arguments (empty without TLS)."""
        if not self.tls:
            return {}
        opts = {"ssl_cert_reqs": self.ssl_cert_reqs}
        for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value:
                opts[name] = value
        return opts


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def is_sentinel_url(url: str) -> bool:
    return scheme_of(url) in SENTINEL_SCHEMES


def validate_redis_url(url: str, what: str = "Redis URL") -> None:
    """A clear ConfigError for any form vpcnet does not accept (checked at start-up)."""
    scheme = scheme_of(url)
    if scheme in SENTINEL_SCHEMES:
        parse_sentinel_url(url)
        return
    if scheme not in SERVER_SCHEMES:
        raise ConfigError(
            f"{what}: unsupported scheme {scheme or '(none)'!r}; use redis://, rediss://, "
            "unix:// or redis+sentinel:// (Redis Cluster is not supported)"
        )


def parse_sentinel_url(url: str) -> SentinelEndpoint:
    """``redis+sentinel://…`` → SentinelEndpoint; ConfigError naming what is wrong."""
    scheme = scheme_of(url)
    if scheme not in SENTINEL_SCHEMES:
        raise ConfigError(f"not a Sentinel URL (redis+sentinel://…): scheme {scheme!r}")
    parts = urlsplit(url)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, sep, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if sep else None
    sentinels = tuple(_host_port(h) for h in hostlist.split(",")) if hostlist else ()
    if not sentinels:
        raise ConfigError("Sentinel URL names no sentinel (redis+sentinel://host:26379/<service>)")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ConfigError("Sentinel URL path must be /<service> or /<service>/<db>")
    service = unquote(path[0])
    db = _int("database", path[1]) if len(path) == 2 else 0
    if db < 0:
        raise ConfigError(f"Sentinel URL database {db} is negative")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(query) - _OPTIONS)
    if unknown:
        raise ConfigError(f"Sentinel URL: unknown option(s) {', '.join(unknown)}")
    opts = {k: v[-1] for k, v in query.items()}
    tls = scheme == "rediss+sentinel"
    if not tls and _TLS_OPTIONS & set(opts):
        raise ConfigError("Sentinel URL: ssl_* options need rediss+sentinel://")
    cert_reqs = opts.get("ssl_cert_reqs", "required")
    if cert_reqs not in _CERT_REQS:
        raise ConfigError(f"Sentinel URL: ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}")
    min_others = _int("min_other_sentinels", opts.get("min_other_sentinels", "0"))
    if min_others < 0:
        raise ConfigError("Sentinel URL: min_other_sentinels must not be negative")
    return SentinelEndpoint(
        sentinels=sentinels,
        service=service,
        db=db,
        username=username,
        password=password,
        sentinel_username=opts.get("sentinel_username") or None,
        sentinel_password=opts.get("sentinel_password") or None,
        min_other_sentinels=min_others,
        tls=tls,
        ssl_ca_certs=opts.get("ssl_ca_certs") or None,
        ssl_certfile=opts.get("ssl_certfile") or None,
        ssl_keyfile=opts.get("ssl_keyfile") or None,
        ssl_cert_reqs=cert_reqs,
    )


def _host_port(item: str) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [::1]:26379
        host, _, rest = item[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ConfigError(f"Sentinel URL: bad address {item!r}")
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise ConfigError(f"Sentinel URL: empty host in {item!r}")
    port = _int("port", port_text) if port_text else DEFAULT_SENTINEL_PORT
    if not 0 < port < 65536:
        raise ConfigError(f"Sentinel URL: port {port} outside 1..65535")
    return host, port


def _int(what: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"Sentinel URL: {what} {text!r} is not a number") from None


__all__ = [
    "DEFAULT_SENTINEL_PORT",
    "SentinelEndpoint",
    "is_sentinel_url",
    "parse_sentinel_url",
    "scheme_of",
    "validate_redis_url",
]
