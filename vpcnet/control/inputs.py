"""Everything one provisioning pass decides from, read once before it plans (pure).

cilium's ``pkg/ipam`` splits a pass into ``PrepareIPAllocation`` (compute from what was
read) and ``AllocateIPs`` (act); :class:`ProvisionInputs` is what the compute step
sees: the store's node record, EC2's view of the instance, the pool usage, the
instance limits, the subnet facts and the node's networking choices. Nothing after
the read changes it, so planning and the write-back are functions of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vpcnet.control.view import InstanceView
from vpcnet.domain import EniRecord, InstanceLimits, IpFamily, IPv4Net, IPv6Net, Mode, NodePhase
from vpcnet.errors import StateError
from vpcnet.plan import EniConfig, NodeSpec, PoolUsage, Targets
from vpcnet.state.records import NodeRecord


@dataclass(frozen=True, slots=True)
class ProvisionInputs:
    cluster: str
    node: str
    previous: NodeRecord | None  # None: the store holds nothing for the node
    previous_enis: tuple[EniRecord, ...]
    instance: InstanceView
    limits: InstanceLimits
    usage: PoolUsage
    mode: Mode
    eni_config: EniConfig  # where new ENIs go (custom networking resolved)
    subnet_cidrs: Mapping[str, IPv4Net]  # every subnet an ENI of this pass can be in
    targets: Targets
    # The pass epoch (ClientTokens, created-at tag): an unfinished pass's, or fresh.
    epoch: str
    ip_family: IpFamily = IpFamily.IPV4
    # The IPv6 /64 of each subnet in ``subnet_cidrs`` (None: it has none).
    subnet_ipv6_cidrs: Mapping[str, IPv6Net | None] = field(default_factory=dict)

    @property
    def was_ready(self) -> bool:
        return self.previous is not None and self.previous.phase is NodePhase.READY

    def spec(self) -> NodeSpec:
        return NodeSpec(
            cluster=self.cluster,
            node_name=self.node,
            instance_id=self.instance.instance_id,
            limits=self.limits,
            mode=self.mode,
            eni_config=self.eni_config,
            targets=self.targets,
            epoch=self.epoch,
            ip_family=self.ip_family,
            ipv6_subnet_cidr=self.ipv6_cidr_of(self._primary_subnet()),
        )

    def _primary_subnet(self) -> str:
        primary = self.instance.primary_eni()
        return primary.subnet_id if primary else self.instance.subnet_id

    def ipv6_cidr_of(self, subnet_id: str) -> IPv6Net | None:
        """The subnet's /64; None when it has none or was not looked up (a pass whose
        inputs name no IPv6 facts: then the ENIs' records say none either)."""
        return self.subnet_ipv6_cidrs.get(subnet_id)

    def cidr_of(self, subnet_id: str) -> IPv4Net:
        try:
            return self.subnet_cidrs[subnet_id]
        except KeyError:
            raise StateError(f"subnet {subnet_id} was not looked up before the pass acted") from None


def pass_epoch(previous: NodeRecord | None, now: float) -> str:
    """The epoch of an unfinished pass (its re-run replays the same ClientTokens), else
    a new one from ``now``."""
    return (previous.pass_epoch if previous else "") or f"{now:.3f}"
