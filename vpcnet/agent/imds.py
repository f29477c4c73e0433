"""Instance metadata (IMDSv2) client for the agent: standard library only.

The agent has no AWS credentials; metadata is how it learns who it is (instance id,
primary MAC and IP, VPC CIDRs) and what the hypervisor attached (one entry per MAC).
Short timeouts and a few retries: IMDS is local and fast, and a hung call must not
stall the agent's loop. The base URL is ``AgentSettings.imds_url`` — the real
``http://169.254.169.254`` or, in simulation, ``{emulator}/_imds/{instance_id}``.
"""

from __future__ import annotations

import ipaddress
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

from vpcnet.agent.metadata import ImdsInterface, InstanceIdentity
from vpcnet.errors import ImdsError

_Value = TypeVar("_Value")

TOKEN_TTL_SECONDS = 21600  # the maximum IMDS allows; refreshed well before expiry
_TOKEN_REFRESH_MARGIN = 60.0


class ImdsClient:
    """IMDSv2: a session token from ``PUT latest/api/token``, then GETs with it."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 1.0,
        attempts: int = 3,
        backoff: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self._clock = clock
        self._sleep = sleep
        self._token: str | None = None
        self._token_expiry = 0.0
        # Only loopback/link-local metadata is ever contacted: never honour proxy env.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # -- transport ---------------------------------------------------------------

    def _request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
        req = urllib.request.Request(
            f"{self.base_url}/{path.lstrip('/')}", method=method, headers=headers
        )
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as e:
            with e:
                return int(e.code), ""

    def _with_retries(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
        last: Exception | None = None
        for attempt in range(self.attempts):
            if attempt:
                self._sleep(self.backoff * (2 ** (attempt - 1)))
            try:
                status, body = self._request(method, path, headers)
            except (OSError, urllib.error.URLError) as e:  # refused, timeout, reset
                last = e
                continue
            if status >= 500 or status == 429:
                last = ImdsError(f"IMDS {method} {path}: HTTP {status}")
                continue
            return status, body
        raise ImdsError(f"IMDS {method} {path} failed after {self.attempts} attempts: {last}") from last

    def _session_token(self) -> str:
        if self._token is None or self._clock() >= self._token_expiry:
            status, body = self._with_retries(
                "PUT",
                "latest/api/token",
                {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
            )
            if status != 200 or not body:
                raise ImdsError(f"IMDS token request refused: HTTP {status}")
            self._token = body.strip()
            self._token_expiry = self._clock() + TOKEN_TTL_SECONDS - _TOKEN_REFRESH_MARGIN
        return self._token

    def get(self, path: str) -> str | None:
        """GET ``latest/meta-data/<path>``; None when IMDS says 404 (absent key)."""
        full = f"latest/meta-data/{path.lstrip('/')}"
        for _ in range(2):  # one retry with a fresh token if IMDS rejected ours
            status, body = self._with_retries(
                "GET", full, {"X-aws-ec2-metadata-token": self._session_token()}
            )
            if status == 401:
                self._token = None
                continue
            if status == 404:
                return None
            if status != 200:
                raise ImdsError(f"IMDS GET {full}: HTTP {status}")
            return body
        raise ImdsError(f"IMDS GET {full}: token rejected twice")

    def require(self, path: str) -> str:
        value = self.get(path)
        if value is None or not value.strip():
            raise ImdsError(f"IMDS has no {path}")
        return value.strip()

    # -- typed views ---------------------------------------------------------------

    def identity(self) -> InstanceIdentity:
        return InstanceIdentity(
            instance_id=self.require("instance-id"),
            primary_mac=self.require("mac").lower(),
            primary_ip=_ip(self.require("local-ipv4"), "local-ipv4"),
        )

    def macs(self) -> list[str]:
        listing = self.get("network/interfaces/macs/") or ""
        return [line.strip().rstrip("/").lower() for line in listing.splitlines() if line.strip()]

    def interface(self, mac: str) -> ImdsInterface:
        base = f"network/interfaces/macs/{mac}/"
        try:
            device_number = int(self.require(base + "device-number"))
        except ValueError as e:
            raise ImdsError(f"non-numeric device-number for {mac}") from e
        return ImdsInterface(
            mac=mac.lower(),
            device_number=device_number,
            interface_id=self.require(base + "interface-id"),
            subnet_id=self.require(base + "subnet-id"),
            subnet_cidr=_net(self.require(base + "subnet-ipv4-cidr-block"), "subnet CIDR"),
            local_ipv4s=tuple(_ip(v, "local-ipv4s") for v in _lines(self.get(base + "local-ipv4s"))),
            ipv4_prefixes=tuple(_net(v, "ipv4-prefix") for v in _lines(self.get(base + "ipv4-prefix"))),
            vpc_cidrs=tuple(
                _net(v, "vpc CIDR") for v in _lines(self.get(base + "vpc-ipv4-cidr-blocks"))
            ),
            # IPv6 keys are absent for an ENI without IPv6: absent reads as empty.
            ipv6s=tuple(_ip6(v, "ipv6s") for v in _lines(self.get(base + "ipv6s"))),
            ipv6_prefixes=tuple(
                _net6(v, "ipv6-prefix") for v in _lines(self.get(base + "ipv6-prefix"))
            ),
            subnet_ipv6_cidr=_subnet_ipv6(self.get(base + "subnet-ipv6-cidr-blocks")),
        )

    def attached_enis(self) -> dict[str, str]:
        """MAC (lower case) -> ENI id of every attached interface: what the agent checks
        before unprogramming an ENI that running pods use (one GET per MAC).

        An empty listing is an error, not "nothing attached": the primary ENI is always
        there, so metadata that shows none cannot be trusted to remove anything.
        """
        macs = self.macs()
        if not macs:
            raise ImdsError("IMDS lists no attached interface (not even the primary ENI)")
        return {mac: self.require(f"network/interfaces/macs/{mac}/interface-id") for mac in macs}

    def interfaces(self) -> dict[str, ImdsInterface]:
        """Every attached ENI by MAC (lower case)."""
        return {mac: self.interface(mac) for mac in self.macs()}


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _parsed(parse: Callable[[str], _Value], raw: str, what: str) -> _Value:
    """One metadata value (an address or a network of either family) or ImdsError."""
    try:
        return parse(raw.strip())
    except ValueError as e:
        raise ImdsError(f"IMDS returned an invalid {what}: {raw!r}") from e


def _ip(raw: str, what: str) -> ipaddress.IPv4Address:
    return _parsed(ipaddress.IPv4Address, raw, what)


def _net(raw: str, what: str) -> ipaddress.IPv4Network:
    return _parsed(ipaddress.IPv4Network, raw, what)


def _ip6(raw: str, what: str) -> ipaddress.IPv6Address:
    return _parsed(ipaddress.IPv6Address, raw, what)


def _net6(raw: str, what: str) -> ipaddress.IPv6Network:
    return _parsed(ipaddress.IPv6Network, raw, what)


def _subnet_ipv6(text: str | None) -> ipaddress.IPv6Network | None:
    """The subnet's /64 from ``subnet-ipv6-cidr-blocks`` (AWS gives a subnet at most one)."""
    blocks = [_net6(v, "subnet IPv6 CIDR") for v in _lines(text)]
    if len(blocks) > 1:
        raise ImdsError(f"IMDS lists more than one subnet IPv6 CIDR: {[str(b) for b in blocks]}")
    return blocks[0] if blocks else None
