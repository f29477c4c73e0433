"""The agent's CNI socket server: where ``vpcnet-cni`` requests become IPs and veths."""

from vpcnet.agent.cniserver.service import CniServer

__all__ = ["CniServer"]
