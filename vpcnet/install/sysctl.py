"""Host sysctls the agent needs, set once by the DaemonSet's privileged init container.

Container runtimes mount /proc/sys read-only in every non-privileged container, so the
long-running agent (NET_ADMIN/NET_RAW/SYS_ADMIN, not privileged) cannot write them. Its
converger reads before writing (vpcnet/agent/hostnet.py), so values set here in
advance make its writes no-ops:

- ``net/ipv4/ip_forward=1``: pods' traffic is routed through the host;
- ``rp_filter=2`` (loose) on every device-backed link (the ENIs) and as the default
  for links created later (ENIs hot-plugged while the agent runs): replies to a pod on
  one ENI may arrive on another, which strict mode would drop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from vpcnet.errors import InstallError
from vpcnet.host_sysctls import (
    DEFAULT_LINK,
    FORWARDING_ON,
    IP_FORWARD,
    RP_FILTER_LOOSE,
    rp_filter,
)


def plan_host_sysctls(device_links: Iterable[str]) -> dict[str, str]:
    """The sysctl values to hold (keys relative to /proc/sys)."""
    values = {IP_FORWARD: FORWARDING_ON, rp_filter(DEFAULT_LINK): RP_FILTER_LOOSE}
    for name in sorted(device_links):
        if not name or "/" in name or name in (".", ".."):
            raise InstallError(f"invalid interface name {name!r}")
        values[rp_filter(name)] = RP_FILTER_LOOSE
    return values


def device_links(sys_class_net: Path = Path("/sys/class/net")) -> list[str]:
    """Links backed by a device (ENIs are PCI/ENA devices; veths, bridges, lo are not)."""
    return sorted(p.name for p in sys_class_net.iterdir() if (p / "device").exists())


def ensure_sysctls(values: Mapping[str, str], proc_sys: Path = Path("/proc/sys")) -> dict[str, str]:
    """Converge: write only values that differ; return those written."""
    written: dict[str, str] = {}
    for key, value in values.items():
        path = proc_sys / key
        try:
            if path.read_text().strip() == value:
                continue
            path.write_text(value)
        except OSError as e:
            raise InstallError(f"sysctl {key}={value}: {e}") from e
        written[key] = value
    return written
