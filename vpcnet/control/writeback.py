"""What a provisioning pass writes to the store, decided purely from its inputs, its plan
and the ENIs acting left (the write-backs of ``vpcnet.control.provision``).

The intent is the one write a pass makes before acting, and only when the plan calls
EC2: the pass epoch must be durable before CreateNetworkInterface, so that a pass killed
after it and re-run replays the same ClientToken (and gets the same ENI back instead of
leaking one). The write-back then lands fields, ENIs and release requests in one step.

A write-back of an unfinished pass (``finished=False``) lands what acting did so far:
the grown pools of a READY node whose pods wait while new ENIs are still being made
(``wants_early_write``), or what the lanes that did not fail did. It keeps the pass
epoch (a retry must replay the same ClientTokens) and the phase (a joining node stays
PROVISIONING: it is not done), and carries no release requests (the finished pass's).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

from vpcnet.control.inputs import ProvisionInputs
from vpcnet.control.view import EniView
from vpcnet.domain import EniRecord, NodePhase
from vpcnet.plan import (
    AddEni,
    AssignIps,
    AssignIpv6Prefixes,
    AssignPrefixes,
    Plan,
    Releasable,
    RequestRelease,
    growth_blocker,
    join_calls,
    managed_enis,
)
from vpcnet.state.records import NodeRecord


@dataclass(frozen=True, slots=True)
class WriteBack:
    record: NodeRecord
    enis: tuple[EniRecord, ...]  # by device index
    released: tuple[Releasable, ...]  # handed back to EC2: out of release-req/release-ok
    release_requests: tuple[Releasable, ...]  # to add to release-req (/80s by CIDR)
    state_changed: bool  # the node record or ENIs differ from the store's

    @property
    def replaces_state(self) -> bool:
        """The node's state is rewritten (a new generation), not only release-req."""
        return self.state_changed or bool(self.released)

    def after(self, earlier: WriteBack) -> WriteBack:
        """This write-back following ``earlier`` in the same pass: changed only if it says
        something ``earlier`` did not land."""
        landed = set(earlier.released)
        return dataclasses.replace(
            self,
            released=tuple(ip for ip in self.released if ip not in landed),
            state_changed=not (self.record.same_desired(earlier.record) and self.enis == earlier.enis),
        )


def intent_fields(inputs: ProvisionInputs) -> dict[str, str]:
    """Recorded before acting: the epoch to replay, and that the node is being worked on."""
    fields = {"pass_epoch": inputs.epoch, "instance_id": inputs.instance.instance_id}
    if not inputs.was_ready:
        fields["phase"] = NodePhase.PROVISIONING.value
    return fields


def retired_epoch_fields() -> dict[str, str]:
    """Written when the epoch's ClientToken names an ENI that is gone: the retry mints
    new tokens instead of replaying the dead ENI."""
    return {"pass_epoch": ""}


def wants_early_write(inputs: ProvisionInputs, plan: Plan) -> bool:
    """Write the grown pools back before the new ENIs' chains end: the node is READY (a
    joining node is tainted, no pod waits on it), the plan adds addresses to existing
    ENIs and also makes new ENIs, which take a whole chain longer."""
    grows = any(isinstance(a, AssignIps | AssignPrefixes | AssignIpv6Prefixes) for a in plan.actions)
    return inputs.was_ready and grows and any(isinstance(a, AddEni) for a in plan.actions)


def plan_write_back(
    inputs: ProvisionInputs, plan: Plan, enis: Sequence[EniView], released: Sequence[Releasable],
    *, finished: bool = True, retire_epoch: bool = False,
) -> WriteBack:
    """``finished``: the pass acted all its plan. ``retire_epoch``: its ClientTokens name
    a vanished ENI, the retry must mint new ones (``retired_epoch_fields``)."""
    inst = inputs.instance
    if finished:
        phase = NodePhase.READY if inputs.was_ready else NodePhase.PROVISIONED
    else:
        phase = NodePhase.READY if inputs.was_ready else NodePhase.PROVISIONING
    record = NodeRecord(
        instance_id=inst.instance_id,
        instance_type=inst.instance_type,
        az=inst.availability_zone,
        subnet_id=inst.subnet_id,
        primary_ip=str(inst.primary_ip or ""),
        mode=inputs.mode.value,
        ip_family=inputs.ip_family.value,
        phase=phase,
        error="",
        # Finished: the next pass starts a new epoch. Unfinished: its retry replays this one.
        pass_epoch="" if finished or retire_epoch else inputs.epoch,
        plan_calls=json.dumps(join_calls(plan), sort_keys=True) if plan.touches_ec2 else "",
        no_growth=growth_blocker(inputs.spec(), enis),
    )
    records = tuple(sorted(
        (e.to_record(inputs.cidr_of(e.subnet_id), inputs.ipv6_cidr_of(e.subnet_id))
         for e in managed_enis(inputs.cluster, enis)),
        key=lambda r: r.device_index,
    ))
    asked = [a for a in plan.actions if isinstance(a, RequestRelease)] if finished else []
    requests: tuple[Releasable, ...] = (*(ip for a in asked for ip in a.ips),
                                        *(p for a in asked for p in a.ipv6_prefixes))
    changed = (
        inputs.previous is None
        or not inputs.previous.same_desired(record)
        or inputs.previous_enis != records
    )
    return WriteBack(record, records, tuple(released), requests, changed)
