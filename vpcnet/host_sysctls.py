"""The host sysctls vpcnet needs and their values (keys relative to /proc/sys).

Two writers hold them: the DaemonSet's privileged init container sets them in advance
(``vpcnet.install.sysctl``), and the agent's converger (``vpcnet.agent.hostplan``) then
finds them set; were the values spelt differently in each, the agent would try writes
that a read-only /proc/sys refuses. Pure: no imports.
"""

from __future__ import annotations

# Pods' traffic is routed through the host.
IP_FORWARD = "net/ipv4/ip_forward"
FORWARDING_ON = "1"

# Loose reverse-path filtering on every ENI: replies to a pod of one ENI may arrive on
# another, which strict mode (1) would drop.
RP_FILTER_LOOSE = "2"
# The ``conf/<link>`` name whose values links created later (hot-plugged ENIs) inherit.
DEFAULT_LINK = "default"


def rp_filter(link: str) -> str:
    """The rp_filter key of ``link`` (an interface name, or DEFAULT_LINK)."""
    return f"net/ipv4/conf/{link}/rp_filter"
