"""The read step of a provisioning pass: every input, read once, before planning.

Reads only (EC2 describes, Redis reads) plus the caches of immutable facts they fill
(instance limits, subnet CIDR and zone): a fact cached here is true for every pass, so
filling it is not part of the node's state and may happen before the plan.

A cluster's first node used to read those facts after DescribeInstances, one round trip
more on its join's chain: the instance type's limits (DescribeInstanceTypes) and its
subnet (DescribeSubnets). Both are read while DescribeInstances is in flight instead:
the type from the Node's ``node.kubernetes.io/instance-type`` label (kubelet sets it; the
instance's own type decides, a label that disagrees only costs a call), the subnet as
one DescribeSubnets of every subnet in the node's zone (the instance's subnet is one of
them; once per zone and worker process). A read ahead that fails or misses changes
nothing: the facts are then read after DescribeInstances, as before.
"""

from __future__ import annotations

import contextvars
import threading
import time
from concurrent.futures import Future

from vpcnet.aws.calls import attributed_to
from vpcnet.control.common import instance_limits, log, subnet_cidr, subnet_ipv6_cidr, targets
from vpcnet.control.context import ControlContext
from vpcnet.control.inputs import ProvisionInputs, pass_epoch
from vpcnet.control.networking import NodeNetworking, choose_subnet, node_networking
from vpcnet.control.view import InstanceView
from vpcnet.domain import InstanceLimits, NodeRef
from vpcnet.errors import ConfigError, NotFoundError, VpcnetError
from vpcnet.plan import EniConfig, managed_enis

# Set by kubelet on every Node (well-known label).
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"


def gather(ctx: ControlContext, ref: NodeRef) -> ProvisionInputs:
    """Bad input (annotations, a subnet that does not exist) fails here: nothing acted."""
    node = ref.name
    previous = ctx.state.read_node(node)
    net = node_networking(ctx.settings.mode, ref.labels, ref.annotations, ctx.profiles,
                          ctx.settings.ip_family)
    hinted_type = ref.labels.get(INSTANCE_TYPE_LABEL, "")
    early_limits = _limits_meanwhile(ctx, hinted_type) if hinted_type else None
    zone_read = (_zone_subnets_meanwhile(ctx, ref.availability_zone)
                 if not (net.subnet_id or net.subnet_tags) else None)
    inst = ctx.ec2.describe_instance(ref.instance_id)
    if inst is None or not inst.alive:
        state = inst.state if inst else "not found"
        raise NotFoundError(f"instance {ref.instance_id} of node {node} is {state}")
    limits_of = (early_limits if early_limits is not None and hinted_type == inst.instance_type
                 else _limits_meanwhile(ctx, inst.instance_type))
    if zone_read is not None:
        zone_read.result()  # never raises: a failed read ahead leaves the cache as it was
    try:
        config = eni_config(ctx, net, inst)
        usage = ctx.state.read_usage(node, ctx.settings.ip_cooldown_seconds)
        # New ENIs go to the config's subnet; the others keep the subnet they are in.
        subnets = {config.subnet_id, *(e.subnet_id for e in managed_enis(ctx.cluster, inst.enis))}
        subnet_cidrs = {s: subnet_cidr(ctx, s) for s in sorted(subnets)}
        # Every ENI record carries its subnet's /64 (the agent's IPv6 routes need it).
        subnet_ipv6_cidrs = {s: subnet_ipv6_cidr(ctx, s) for s in sorted(subnets)}
    finally:
        limits = limits_of.result()  # its error first, as when the limits were read first
    return ProvisionInputs(
        cluster=ctx.cluster,
        node=node,
        previous=previous.record if previous else None,
        previous_enis=previous.enis if previous else (),
        instance=inst,
        limits=limits,
        usage=usage,
        mode=net.mode,
        ip_family=net.ip_family,
        eni_config=config,
        subnet_cidrs=subnet_cidrs,
        subnet_ipv6_cidrs=subnet_ipv6_cidrs,
        targets=targets(ctx),
        epoch=pass_epoch(previous.record if previous else None, time.time()),
    )


def _limits_meanwhile(ctx: ControlContext, instance_type: str) -> Future[InstanceLimits]:
    """The instance type's limits, read while the caller reads the subnets. Both are facts
    the cluster caches: the first time it meets them, a DescribeInstanceTypes and a
    DescribeSubnets, ~0.1 s each, which a cluster's first node waited for one after the
    other. A cached answer (the usual case) is read here, without a thread."""
    answer: Future[InstanceLimits] = Future()
    cached = ctx.state.cached_limits(instance_type)
    if cached is not None:
        answer.set_result(cached)
        return answer
    # The call's priority and attribution are context variables: the thread gets a copy.
    run = contextvars.copy_context().run

    def read() -> None:
        try:
            answer.set_result(run(instance_limits, ctx, instance_type))
        except BaseException as e:  # handed to the caller, who raises it
            answer.set_exception(e)

    threading.Thread(target=read, name="gather-limits", daemon=True).start()
    return answer


def _zone_subnets_meanwhile(ctx: ControlContext, zone: str) -> Future[None]:
    """Cache every subnet of ``zone`` (one DescribeSubnets), in a thread, the first time
    this process meets the zone; later passes get the same read (done, or in flight).
    Its error is logged, not raised: the pass then reads its subnet by id, as it did
    before, and the next pass in the zone tries the zone again."""
    done: Future[None] = Future()
    if not zone:
        done.set_result(None)
        return done
    with ctx.zones_lock:
        earlier = ctx.zones_read.get(zone)
        if earlier is not None:
            return earlier
        ctx.zones_read[zone] = done
    run = contextvars.copy_context().run

    def forget() -> None:
        with ctx.zones_lock:
            ctx.zones_read.pop(zone, None)

    def read() -> None:
        try:
            with attributed_to(None):  # a fact of the cluster's, not of this node's
                found = ctx.ec2.describe_subnets(filters={"availability-zone": [zone]})
            for s in found:
                ctx.state.store_subnet(s.subnet_id, s.cidr, s.availability_zone, s.ipv6_cidr)
        except VpcnetError as e:
            forget()
            log.info("zone's subnets not read ahead", zone=zone, error=str(e))
        except BaseException as e:  # never the pass's error
            forget()
            log.warning("zone's subnets not read ahead", zone=zone, error=repr(e))
        finally:
            done.set_result(None)

    threading.Thread(target=run, args=(read,), name="gather-subnets", daemon=True).start()
    return done


def eni_config(ctx: ControlContext, net: NodeNetworking, inst: InstanceView) -> EniConfig:
    """Where the node's new ENIs go, its custom networking resolved against EC2."""
    primary = inst.primary_eni()
    groups = net.security_groups or (primary.security_groups if primary else inst.security_groups)
    if net.subnet_id:
        subnet = net.subnet_id
        with attributed_to(None):
            found = ctx.ec2.describe_subnets([subnet]) if ctx.state.cached_subnet(subnet) is None else []
        if found:
            ctx.state.store_subnet(subnet, found[0].cidr, found[0].availability_zone,
                                   found[0].ipv6_cidr)
        cached = ctx.state.cached_subnet(subnet)
        if cached is None:
            raise ConfigError(f"subnet {subnet} does not exist")
        if cached[1] and cached[1] != inst.availability_zone:
            raise ConfigError(f"subnet {subnet} is in {cached[1]}, the node in {inst.availability_zone}")
    elif net.subnet_tags:
        filters = {f"tag:{k}": [v] for k, v in net.subnet_tags.items()}
        filters["vpc-id"] = [inst.vpc_id]
        chosen = choose_subnet(ctx.ec2.describe_subnets(filters=filters), inst.availability_zone)
        ctx.state.store_subnet(chosen.subnet_id, chosen.cidr, chosen.availability_zone,
                               chosen.ipv6_cidr)
        subnet = chosen.subnet_id
    else:
        subnet = primary.subnet_id if primary else inst.subnet_id
    return EniConfig(subnet_id=subnet, security_groups=tuple(sorted(groups)))
