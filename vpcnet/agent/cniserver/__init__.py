"""The agent's CNI socket server: where ``vpcnet-cni`` requests become IPs and veths.

One idea per module:

- ``transport``: the unix socket (mode 0600), framing, the serving loop and its restart.
- ``request``: a wire request validated again (never trust the client).
- ``dispatch``: one request -> one reply, serialised per key (``locks``), with spec codes.
- ``service``: what ADD, DEL, CHECK, STATUS and GC do against the IPAM and ``PodNetwork``.
- ``spool`` and ``sweeper``: DELs the plugin spooled while the agent was unreachable
  (``pending-del`` next to the socket), read, quarantined, and replayed.
- ``timing``: where a request's time went.
- ``inprocess``: the static launcher's fast path: a raw invocation (stdin + CNI_* env)
  run by the plugin's own ``main`` in the agent, or answered "fallback".
- ``server``: ``CniServer``, all of them put together.
"""

from vpcnet.agent.cniserver.server import CniServer

__all__ = ["CniServer"]
