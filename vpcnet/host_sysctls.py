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


# IPv6 (nodes with /80 prefixes). Forwarding on makes the kernel ignore router
# advertisements on links whose accept_ra is 1; 2 keeps accepting them, so a node whose
# default route is RA-learned (the primary ENI on AWS) keeps its IPv6 default route.
IPV6_FORWARDING = "net/ipv6/conf/all/forwarding"
ACCEPT_RA_WITH_FORWARDING = "2"
# The node answers NDP for its pods' addresses on the ENI holding their /80, at once:
# by default the kernel delays each proxied answer to a multicast solicitation by up
# to proxy_delay (0.8 s), the first packet to every pod included.
PROXY_NDP_ON = "1"
PROXY_DELAY_NONE = "0"


def accept_ra(link: str) -> str:
    """The accept_ra key of ``link``."""
    return f"net/ipv6/conf/{link}/accept_ra"


def proxy_ndp(link: str) -> str:
    """The proxy_ndp key of ``link``."""
    return f"net/ipv6/conf/{link}/proxy_ndp"


def proxy_delay(link: str) -> str:
    """The NDP proxy_delay key (jiffies) of ``link``."""
    return f"net/ipv6/neigh/{link}/proxy_delay"
