"""AWS EC2 API request-rate token buckets (pure data).

EC2 throttles per account and Region with one token bucket *per API action*, sized by
the action's category (AWS EC2 API docs, "Request throttling for the Amazon EC2 API",
request token bucket sizes and refill rates). The EC2 emulator enforces these; vpcnet's
shared rate limiter (``vpcnet.aws.ratelimit``) stays below them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bucket:
    capacity: int  # tokens a burst may spend
    refill_per_second: float


NON_MUTATING = Bucket(100, 20.0)
MUTATING = Bucket(50, 5.0)
# "Resource-intensive"/ENI actions vpcnet calls most: bigger bucket, same refill.
ENI_MUTATING = Bucket(100, 5.0)

_ENI_MUTATING_ACTIONS = frozenset(
    {
        "CreateNetworkInterface",
        "AssignPrivateIpAddresses",
        "ModifyNetworkInterfaceAttribute",
        "DeleteNetworkInterface",
    }
)


def bucket_for(action: str) -> Bucket:
    """The bucket AWS applies to ``action`` (each action has its own bucket of this size)."""
    if action in _ENI_MUTATING_ACTIONS:
        return ENI_MUTATING
    if action.startswith(("Describe", "Get", "List")):
        return NON_MUTATING
    return MUTATING
