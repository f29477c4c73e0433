"""The act step of a provisioning pass: the plan's EC2 mutations, and nothing else.

Every call goes through the fenced ``Ec2`` adapter (invariant 9: none after the node's
lock is lost). No Redis or Kubernetes here: what acting changed comes back as a value
for the pass's one write-back (``vpcnet.control.writeback``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import structlog

from vpcnet.aws.ec2 import Ec2
from vpcnet.control.common import Deadline
from vpcnet.control.view import EniView, InstanceView, created_at_tag, eni_description
from vpcnet.domain import IPv4
from vpcnet.errors import Ec2PermanentError, PermanentError, TemporaryError
from vpcnet.plan import (
    AddEni,
    AssignIps,
    AssignPrefixes,
    NodeSpec,
    Plan,
    RequestRelease,
    SetDeleteOnTermination,
    UnassignIps,
    UnassignPrefixes,
)
from vpcnet.wellknown import TAG_CLUSTER, TAG_CREATED_AT, TAG_INSTANCE, TAG_NODE

log = structlog.get_logger("vpcnet.control")


class StaleClientToken(TemporaryError):
    """The pass epoch's ClientToken names an ENI that is gone (GC deleted it before it
    was attached): the epoch must be retired, or every re-run replays the dead ENI."""


@dataclass(frozen=True, slots=True)
class Acted:
    enis: tuple[EniView, ...]  # the instance's ENIs as they now are
    released: tuple[IPv4, ...]  # addresses handed back to EC2


def act(ec2: Ec2, spec: NodeSpec, inst: InstanceView, plan: Plan, deadline: Deadline) -> Acted:
    """Carry out the plan's EC2 actions in order (RequestRelease is the write-back's)."""
    enis = {e.eni_id: e for e in inst.enis}
    released: list[IPv4] = []
    for a in plan.actions:
        if isinstance(a, RequestRelease):
            continue  # Redis only: lands with the write-back
        deadline.check(type(a).__name__)
        if isinstance(a, AssignIps):
            got = ec2.assign_ips(a.eni_id, a.count)
            enis[a.eni_id] = dataclasses.replace(enis[a.eni_id], ips=enis[a.eni_id].ips + got)
        elif isinstance(a, AssignPrefixes):
            pfx = ec2.assign_prefixes(a.eni_id, a.count)
            enis[a.eni_id] = dataclasses.replace(enis[a.eni_id], prefixes=enis[a.eni_id].prefixes + pfx)
        elif isinstance(a, AddEni):
            view = add_eni(ec2, spec, a)
            enis[view.eni_id] = view
        elif isinstance(a, SetDeleteOnTermination):
            ec2.set_delete_on_termination(a.eni_id, a.attachment_id)
            enis[a.eni_id] = dataclasses.replace(enis[a.eni_id], delete_on_termination=True)
        elif isinstance(a, UnassignIps):
            ec2.unassign_ips(a.eni_id, a.ips)
            gone = set(a.ips)
            e = enis[a.eni_id]
            enis[a.eni_id] = dataclasses.replace(e, ips=tuple(i for i in e.ips if i not in gone))
            released += a.ips
        elif isinstance(a, UnassignPrefixes):
            ec2.unassign_prefixes(a.eni_id, a.prefixes)
            e = enis[a.eni_id]
            enis[a.eni_id] = dataclasses.replace(
                e, prefixes=tuple(p for p in e.prefixes if p not in a.prefixes)
            )
            released += [ip for p in a.prefixes for ip in p]
    return Acted(tuple(enis.values()), tuple(released))


def add_eni(ec2: Ec2, spec: NodeSpec, a: AddEni) -> EniView:
    """Create (addresses + tags in one call), attach at ``a.device_index``, DeleteOnTermination."""
    # The pass epoch, not now: a replayed ClientToken must carry identical parameters.
    created_at = created_at_tag(float(spec.epoch))
    eni = ec2.create_eni(
        subnet_id=a.subnet_id,
        security_groups=a.security_groups,
        ip_count=a.ip_count,
        prefix_count=a.prefix_count,
        client_token=a.client_token,
        description=eni_description(spec.cluster, spec.node_name),
        tags={
            TAG_CLUSTER: spec.cluster,
            TAG_NODE: spec.node_name,
            TAG_INSTANCE: spec.instance_id,
            TAG_CREATED_AT: created_at,
        },
    )
    if eni.attachment_id and eni.instance_id == spec.instance_id:
        attachment = eni.attachment_id  # a replayed token returned the ENI we attached
    else:
        try:
            attachment = ec2.attach_eni(eni.eni_id, spec.instance_id, a.device_index)
        except Ec2PermanentError as e:
            if e.code == "InvalidNetworkInterfaceID.NotFound":
                raise StaleClientToken(f"ENI {eni.eni_id} vanished before attach", delay=1.0) from e
            _discard(ec2, eni.eni_id)  # nothing half-created
            raise
    ec2.set_delete_on_termination(eni.eni_id, attachment)
    return dataclasses.replace(
        eni,
        device_index=a.device_index,
        attachment_id=attachment,
        instance_id=spec.instance_id,
        delete_on_termination=True,
        status="in-use",
    )


def _discard(ec2: Ec2, eni_id: str) -> None:
    try:
        ec2.delete_eni(eni_id)
    except (PermanentError, TemporaryError) as e:
        log.warning("could not delete unattached ENI; GC will", eni=eni_id, error=str(e))
