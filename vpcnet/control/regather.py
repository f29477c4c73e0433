"""The read step of a pass's later round: what the round before it left, and Redis again.

A pass runs further rounds under the same holding of the node's lock when its demand
outgrew what it planned for, or another pass was handed to it
(``vpcnet.control.provision``). Between two rounds nothing of vpcnet can change the
instance's ENIs (every mutation for the node is fenced by that lock), and the round
before acted on EC2's answer of its own DescribeInstances: its act step returns the
ENIs as they now are (``Acted.enis``). So a later round plans from those, not from a
second DescribeInstances (150-300 ms at AWS's latencies, during which the ADDs that
arrived meanwhile wait): one AssignPrivateIpAddresses per ENI for the new shortfall
follows the last answer at once. What others write is read again: the node's record
(the round before wrote it) and the agent's pool usage and demand.

An external change between the rounds (a hand-detached ENI, an IP assigned from the
console) is what EC2 refuses (its limits, a detached ENI) or the next pass's fresh read
converges; the same is true of the moment between a first round's DescribeInstances
and its act.
"""

from __future__ import annotations

import dataclasses
import time

from vpcnet.control.context import ControlContext
from vpcnet.control.inputs import ProvisionInputs, pass_epoch
from vpcnet.control.view import EniView


def regather(ctx: ControlContext, earlier: ProvisionInputs,
             enis: tuple[EniView, ...]) -> ProvisionInputs:
    """The next round's inputs after a round of ``earlier`` that left the instance with
    ``enis``: the facts and choices of ``earlier`` (limits, subnets, networking), the
    store's node record and the pool usage read now, and a fresh pass epoch."""
    previous = ctx.state.read_node(earlier.node)
    usage = ctx.state.read_usage(earlier.node, ctx.settings.ip_cooldown_seconds)
    record = previous.record if previous else None
    return dataclasses.replace(
        earlier,
        previous=record,
        previous_enis=previous.enis if previous else (),
        instance=dataclasses.replace(earlier.instance, enis=enis),
        usage=usage,
        epoch=pass_epoch(record, time.time()),
    )


__all__ = ["regather"]
