"""One error hierarchy for vpcnet.

Adapters translate library errors (botocore, redis, kubernetes, pyroute2) into these
with ``raise ... from e``. Retry semantics live in the type: a ``TemporaryError`` is
worth retrying (throttling, 5xx, conflicts), a ``PermanentError`` is not and must be
surfaced (Kubernetes Event on the node, error in Redis) instead of crash-looping.

An error's ``args`` are its constructor's positional arguments: a Celery result backend
(and pickle) rebuilds a task's error as ``type(*args)``.
"""

from __future__ import annotations


class VpcnetError(Exception):
    """Base of every error vpcnet raises on purpose."""


class TemporaryError(VpcnetError):
    """Transient: retry after ``delay`` seconds (None lets the caller choose a backoff)."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(VpcnetError):
    """Will not succeed by retrying; needs a human or a changed input."""


class ConfigError(PermanentError):
    """Invalid settings, annotation, profile or CNI configuration."""


class UnknownInstanceTypeError(PermanentError):
    """No ENI/IP limits are known for this instance type."""


class NotFoundError(PermanentError):
    """The object (instance, ENI, node) does not exist (any more)."""


class Ec2Error(VpcnetError):
    """An EC2 API error, with the AWS error code kept for matching."""

    def __init__(self, code: str, message: str) -> None:
        # Not super(): next in a subclass's MRO is TemporaryError's (message, *, delay).
        Exception.__init__(self, code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class Ec2TemporaryError(Ec2Error, TemporaryError):
    """Throttling, 5xx, eventual-consistency 'not found yet'."""

    def __init__(self, code: str, message: str, *, delay: float | None = None) -> None:
        Ec2Error.__init__(self, code, message)
        self.delay = delay


class Ec2PermanentError(Ec2Error, PermanentError):
    """Limits exceeded, invalid parameters, unauthorized."""


class StateError(TemporaryError):
    """Redis unreachable or a lost optimistic-lock race; retry."""


class LockHeld(TemporaryError):
    """Another worker holds the per-node lock; retry later."""


class PoolExhausted(VpcnetError):
    """The node has no free IP (CNI code 11)."""


class CheckpointError(PermanentError):
    """The agent's local checkpoint exists but cannot be read back (corrupt, wrong version)."""


class ImdsError(TemporaryError):
    """Instance metadata unreachable, refusing tokens or returning malformed values."""


class HostNetworkError(TemporaryError):
    """Programming the node's ENI links, route tables, rules, sysctls or iptables failed."""


class PodNetworkError(VpcnetError):
    """Programming a pod's veth, addresses, routes or rules failed (netlink errno kept)."""

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class InstallError(PermanentError):
    """The CNI plugin or its self-contained runtime could not be installed."""


class KubeError(VpcnetError):
    """A Kubernetes API error; ``status`` is the HTTP code, ``reason`` the Status reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        Exception.__init__(self, status, reason, message)  # as Ec2Error
        self.status = status
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.status} {self.reason}: {self.message}"


class KubeTemporaryError(KubeError, TemporaryError):
    """5xx, 429, a connection failure or timeout: retry with backoff."""

    def __init__(self, status: int, reason: str, message: str, *, delay: float | None = None) -> None:
        KubeError.__init__(self, status, reason, message)
        self.delay = delay


class KubeConflict(KubeTemporaryError):
    """409: an optimistic-concurrency race was lost (or the object already exists); re-read."""


class KubePermanentError(KubeError, PermanentError):
    """Forbidden, invalid, unsupported: retrying the same request will not help."""


class WatchExpired(VpcnetError):
    """410 Gone: the watch's resourceVersion is too old; the caller must relist."""
