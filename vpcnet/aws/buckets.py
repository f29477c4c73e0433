"""AWS EC2 API request-rate token buckets (pure data): the one table.

EC2 throttles per account and Region with one token bucket *per API action*, sized by
the action's category (AWS EC2 API docs, "Request throttling for the Amazon EC2 API",
request token bucket sizes and refill rates). Every action has its *own* bucket of its
category's size; a few listed actions have individual sizes. The EC2 emulator enforces
this table and vpcnet's shared rate limiter (``vpcnet.aws.ratelimit``) stays below it,
so the two cannot disagree.

Change from the table the limiter used before (it had a coarser copy):
UnassignPrivateIpAddresses is an individually sized action (100 tokens, 5/s), not a
generic mutating one (50, 5/s) — AWS's table lists it next to AssignPrivateIpAddresses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bucket:
    capacity: int  # tokens a burst may spend
    refill_per_second: float

    def scaled(self, time_scale: float) -> Bucket:
        """The same bucket on a clock running ``time_scale`` times faster (benchmarks)."""
        return Bucket(self.capacity, self.refill_per_second * time_scale)


NON_MUTATING = Bucket(100, 20.0)
# Describe calls of some actions without a filter, pagination or ids drain a smaller
# bucket (AWS: "Unfiltered and unpaginated non-mutating actions").
UNFILTERED = Bucket(50, 10.0)
MUTATING = Bucket(50, 5.0)

UNFILTERED_ACTIONS = frozenset(
    {
        "DescribeInstances",
        "DescribeInstanceStatus",
        "DescribeNetworkInterfaces",
        "DescribeSecurityGroups",
        "DescribeSnapshots",
        "DescribeSpotInstanceRequests",
        "DescribeVolumes",
    }
)

# "Uncategorized actions" of the AWS table that matter to an ENI/IP manager.
INDIVIDUAL: Mapping[str, Bucket] = {
    "AssignIpv6Addresses": Bucket(100, 5.0),
    "AssignPrivateIpAddresses": Bucket(100, 5.0),
    "UnassignPrivateIpAddresses": Bucket(100, 5.0),
    "CreateNetworkInterface": Bucket(100, 5.0),
    "DeleteNetworkInterface": Bucket(100, 5.0),
    "ModifyNetworkInterfaceAttribute": Bucket(100, 5.0),
    "CreateTags": Bucket(100, 10.0),
    "DeleteTags": Bucket(100, 10.0),
    "TerminateInstances": Bucket(100, 5.0),
    "RunInstances": Bucket(5, 2.0),
    "StartInstances": Bucket(5, 2.0),
    "AssociateIamInstanceProfile": Bucket(100, 5.0),
    "ModifyInstanceMetadataOptions": Bucket(100, 5.0),
}


def is_non_mutating(action: str) -> bool:
    return action.startswith(("Describe", "Get", "List", "Search"))


def bucket_key(action: str, *, filtered: bool) -> str:
    """The bucket a request draws from (an action's unfiltered calls have their own)."""
    if action in UNFILTERED_ACTIONS and not filtered:
        return f"{action}#unfiltered"
    return action


def aws_bucket(key: str) -> Bucket:
    """AWS's bucket for a bucket key (an action, or ``<action>#unfiltered``)."""
    action, _, variant = key.partition("#")
    if variant == "unfiltered":
        return UNFILTERED
    if action in INDIVIDUAL:
        return INDIVIDUAL[action]
    return NON_MUTATING if is_non_mutating(action) else MUTATING


def bucket_for(action: str) -> Bucket:
    """The bucket AWS applies to ``action``'s filtered calls (vpcnet always filters or
    names ids, so this is the bucket its calls draw from)."""
    return aws_bucket(action)
