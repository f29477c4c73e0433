"""release_node: detach and delete a node's vpcnet ENIs, then drop its Redis state.

Finds the ENIs by tag (cluster + instance), so it also removes ENIs a killed provisioning
pass created but never attached; tolerates the instance being gone already.
"""

from __future__ import annotations

from dataclasses import dataclass

from vpcnet.aws.calls import attributed_to
from vpcnet.control.common import log, node_lock
from vpcnet.control.context import ControlContext
from vpcnet.domain import NodePhase
from vpcnet.errors import ConfigError, Ec2PermanentError, TemporaryError
from vpcnet.wellknown import TAG_CLUSTER, TAG_INSTANCE


@dataclass(frozen=True, slots=True)
class ReleaseOutcome:
    node: str
    deleted: tuple[str, ...] = ()
    note: str = ""


def release_node(ctx: ControlContext, node_name: str, instance_id: str) -> ReleaseOutcome:
    with attributed_to(node_name):
        try:
            ref = ctx.kube.get_node(node_name)
        except ConfigError:
            ref = None  # no AWS providerID any more: not ours to keep
        if ref is not None and ref.instance_id == instance_id:
            return ReleaseOutcome(node_name, note="node exists again with this instance; kept")
        with node_lock(ctx, node_name):
            current = ctx.state.read_node(node_name)
            ours = current is None or current.instance_id in ("", instance_id)
            if current is not None and ours:
                ctx.state.set_fields(node_name, {"phase": NodePhase.RELEASING.value}, register=False)
            deleted = remove_instance_enis(ctx, instance_id)
            if ours:
                ctx.state.delete_node(node_name)
            log.info("node released", node=node_name, instance=instance_id, deleted=deleted)
            return ReleaseOutcome(node_name, tuple(deleted))


def remove_instance_enis(ctx: ControlContext, instance_id: str) -> list[str]:
    """Idempotent: detach (forced) and delete every ENI vpcnet made for ``instance_id``.

    Detaching takes a moment in EC2; while any ENI is still detaching this raises a
    TemporaryError so the task comes back and deletes it, rather than polling.
    """
    enis = ctx.ec2.describe_enis({f"tag:{TAG_CLUSTER}": [ctx.cluster], f"tag:{TAG_INSTANCE}": [instance_id]})
    deleted: list[str] = []
    waiting = 0
    for e in enis:
        if e.attachment_id and e.status in ("in-use", "attaching"):
            ctx.ec2.detach_eni(e.attachment_id, force=True)
            waiting += 1
        elif e.status == "detaching":
            waiting += 1
        else:
            try:
                if ctx.ec2.delete_eni(e.eni_id):
                    deleted.append(e.eni_id)
            except Ec2PermanentError as err:
                if err.code != "InvalidNetworkInterface.InUse":
                    raise
                waiting += 1
    if waiting:
        raise TemporaryError(f"{waiting} ENIs of {instance_id} still detaching", delay=2.0)
    return deleted
