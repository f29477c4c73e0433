"""Per-action call counters that tests and benchmarks read.

``calls`` counts every EC2 request received (including throttled and failed ones),
``throttled`` the ones answered RequestLimitExceeded (by the token buckets or an
injected fault), ``errors`` every error response by code (throttling, injected faults
and rule violations alike).
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._throttled: Counter[str] = Counter()
        self._errors: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def call(self, action: str) -> None:
        with self._lock:
            self._calls[action] += 1

    def error(self, action: str, code: str) -> None:
        with self._lock:
            self._errors[action][code] += 1
            if code == "RequestLimitExceeded":
                self._throttled[action] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self._calls),
                "throttled": dict(self._throttled),
                "errors": {a: dict(c) for a, c in self._errors.items()},
            }

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._throttled.clear()
            self._errors.clear()
