"""Fault injection: a random 5xx rate, and named errors for named actions.

A rule fails an action either at a ``rate`` or for its next ``count`` calls. With
``after=True`` the action takes effect and *then* the caller gets the error, which is
how a lost response looks on AWS (the case ClientToken idempotency exists for).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from vpcnet_sim.ec2.errors import SimApiError

_5XX = (
    ("InternalError", "An internal error has occurred."),
    ("ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
)

_DEFAULT_MESSAGES = {
    "InternalError": _5XX[0][1],
    "ServiceUnavailable": _5XX[1][1],
    "Unavailable": "The server is overloaded and can't handle the request.",
    "RequestLimitExceeded": "Request limit exceeded.",
}


@dataclass(frozen=True, slots=True)
class FaultRule:
    action: str  # an EC2 action name, or "*" for every action
    code: str
    message: str = ""
    rate: float = 1.0  # probability per matching call (ignored while count is set)
    count: int | None = None  # fail exactly the next N matching calls, then expire
    after: bool = False  # apply the action, then fail the response

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FaultRule:
        count = d.get("count")
        return cls(
            action=str(d["action"]),
            code=str(d["code"]),
            message=str(d.get("message", "")),
            rate=float(d.get("rate", 1.0)),
            count=None if count is None else int(count),
            after=bool(d.get("after", False)),
        )

    def error(self) -> SimApiError:
        msg = self.message or _DEFAULT_MESSAGES.get(self.code, f"Injected fault {self.code}.")
        return SimApiError(self.code, msg)


class FaultInjector:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.rate_5xx = 0.0
        self._rules: list[FaultRule] = []
        self._remaining: list[int | None] = []

    def configure(self, rate_5xx: float = 0.0, rules: Iterable[FaultRule] = ()) -> None:
        """Replace the whole fault set."""
        if not 0.0 <= rate_5xx <= 1.0:
            raise ValueError("rate_5xx must be within [0, 1]")
        with self._lock:
            self.rate_5xx = rate_5xx
            self._rules = list(rules)
            self._remaining = [r.count for r in self._rules]

    def pick(self, action: str, *, after: bool) -> SimApiError | None:
        """The error to answer this call with in this phase, if any (consumes counts)."""
        with self._lock:
            if not after and self.rate_5xx and self._rng.random() < self.rate_5xx:
                code, msg = self._rng.choice(_5XX)
                return SimApiError(code, msg)
            for i, rule in enumerate(self._rules):
                if rule.after != after or rule.action not in ("*", action):
                    continue
                left = self._remaining[i]
                if left is not None:
                    if left <= 0:
                        continue
                    self._remaining[i] = left - 1
                    return rule.error()
                if self._rng.random() < rule.rate:
                    return rule.error()
            return None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rate_5xx": self.rate_5xx,
                "rules": [
                    {**asdict(r), "remaining": left}
                    for r, left in zip(self._rules, self._remaining, strict=True)
                ],
            }
