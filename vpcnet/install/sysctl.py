"""Host sysctls the agent needs, set once by the DaemonSet's privileged init container.

Container runtimes mount /proc/sys read-only in every non-privileged container, so the
long-running agent (NET_ADMIN/NET_RAW/SYS_ADMIN, not privileged) cannot write them. Its
converger reads before writing (vpcnet/agent/hostnet.py), so values set here in
advance make its writes no-ops:

- ``net/ipv4/ip_forward=1``: pods' traffic is routed through the host;
- ``rp_filter=2`` (loose) on every device-backed link (the ENIs) and as the default
  for links created later (ENIs hot-plugged while the agent runs): replies to a pod on
  one ENI may arrive on another, which strict mode would drop.

On an ipv6 or dual node (``--ip-family``) the agent's IPv6 keys too, for the same reason
(``vpcnet.agent.hostplan`` writes them as soon as an ENI holds a /80):

- ``accept_ra=2`` on the primary ENI's link (the link of the node's default route),
  written before forwarding: with forwarding on, ``accept_ra=1`` ignores router
  advertisements and the node loses its RA-learned IPv6 default route;
- ``net/ipv6/conf/all/forwarding=1``;
- ``proxy_ndp=1`` and ``proxy_delay=0`` on every device-backed link and as the default
  for links created later: the node answers NDP for its pods on the ENI holding their
  /80, at once. On links holding no /80 they do nothing (no proxy entries there).

An ipv4 node gets none of them: IPv6 forwarding would change how an IPv4 node treats
router advertisements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from vpcnet.domain import IpFamily
from vpcnet.errors import InstallError
from vpcnet.host_sysctls import (
    ACCEPT_RA_WITH_FORWARDING,
    DEFAULT_LINK,
    FORWARDING_ON,
    IP_FORWARD,
    IPV6_FORWARDING,
    PROXY_DELAY_NONE,
    PROXY_NDP_ON,
    RP_FILTER_LOOSE,
    accept_ra,
    proxy_delay,
    proxy_ndp,
    rp_filter,
)

# Keys only the host's initial network namespace has: the neighbour tables' defaults
# (``net/ipv6/neigh/default``) are not per namespace. Skipped where absent (a node run in
# a network namespace of its own, the simulated VPC's); the agent sets proxy_delay on
# each ENI holding a /80 itself.
NAMESPACE_ABSENT_KEYS = frozenset({proxy_delay(DEFAULT_LINK)})


def _check_link(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise InstallError(f"invalid interface name {name!r}")
    return name


def plan_host_sysctls(
    device_links: Iterable[str], family: IpFamily = IpFamily.IPV4, primary_link: str = ""
) -> dict[str, str]:
    """The sysctl values to hold (keys relative to /proc/sys), in the order to write
    them. ``primary_link`` (the primary ENI's link) is needed for an ipv6 or dual node."""
    links = [_check_link(name) for name in sorted(device_links)]
    values = {IP_FORWARD: FORWARDING_ON, rp_filter(DEFAULT_LINK): RP_FILTER_LOOSE}
    for name in links:
        values[rp_filter(name)] = RP_FILTER_LOOSE
    if not family.wants_ipv6:
        return values
    if not primary_link:
        raise InstallError(
            f"an {family.value} node needs accept_ra={ACCEPT_RA_WITH_FORWARDING} on its primary ENI's link, "
            "and no default route names one"
        )
    values[accept_ra(_check_link(primary_link))] = ACCEPT_RA_WITH_FORWARDING  # before forwarding
    values[IPV6_FORWARDING] = FORWARDING_ON
    for name in [DEFAULT_LINK, *links]:
        values[proxy_ndp(name)] = PROXY_NDP_ON
        values[proxy_delay(name)] = PROXY_DELAY_NONE
    return values


def default_route_link(proc_net: Path = Path("/proc/net")) -> str:
    """The link of the default route in the main table (IPv4, else IPv6): the primary
    ENI's (the agent routes pods of other ENIs through tables of their own); "" if none."""
    try:
        for line in (proc_net / "route").read_text().splitlines()[1:]:
            cols = line.split()  # Iface Destination Gateway Flags RefCnt Use Metric Mask ...
            if len(cols) >= 8 and cols[1] == "00000000" and cols[7] == "00000000":
                return cols[0]
    except OSError:
        pass
    try:
        for line in (proc_net / "ipv6_route").read_text().splitlines():
            cols = line.split()  # dst dst_len src src_len next_hop metric refcnt use flags dev
            if len(cols) == 10 and cols[0] == "0" * 32 and cols[1] == "00" and cols[9] != "lo":
                return cols[9]
    except OSError:
        pass
    return ""


def device_links(sys_class_net: Path = Path("/sys/class/net")) -> list[str]:
    """Links backed by a device (ENIs are PCI/ENA devices; veths, bridges, lo are not)."""
    return sorted(p.name for p in sys_class_net.iterdir() if (p / "device").exists())


def ensure_sysctls(
    values: Mapping[str, str],
    proc_sys: Path = Path("/proc/sys"),
    optional: frozenset[str] = NAMESPACE_ABSENT_KEYS,
) -> dict[str, str]:
    """Converge: write only values that differ; return those written. A key the host
    does not have (e.g. IPv6 keys with IPv6 disabled) fails before anything is written,
    unless it is ``optional`` (then it is skipped)."""
    present = {key: value for key, value in values.items() if (proc_sys / key).exists()}
    missing = sorted(set(values) - set(present) - optional)
    if missing:
        raise InstallError(f"the host has no sysctl {', '.join(missing)}")
    written: dict[str, str] = {}
    for key, value in present.items():
        path = proc_sys / key
        try:
            if path.read_text().strip() == value:
                continue
            path.write_text(value)
        except OSError as e:
            raise InstallError(f"sysctl {key}={value}: {e}") from e
        written[key] = value
    return written
