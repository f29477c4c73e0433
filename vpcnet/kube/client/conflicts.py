"""How often and how long to retry a write the server refused with 409 Conflict."""

from __future__ import annotations

import random
import time

CONFLICT_RETRIES = 10


def conflict_pause(attempt: int) -> None:
    # Small jittered backoff so racing writers spread out instead of colliding again.
    time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
