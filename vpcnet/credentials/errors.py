"""Why a credential was not issued or could not be fetched (part of vpcnet.errors' tree)."""

from __future__ import annotations

from vpcnet.errors import PermanentError, TemporaryError


class CredentialDenied(PermanentError):
    """The token does not entitle its bearer to a node credential (HTTP 401/403).

    ``status`` is the HTTP status the issuer answers with: 401 when the token itself is
    not valid (expired, forged, wrong audience), 403 when it is valid but names no agent.
    """

    def __init__(self, message: str, *, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


class CredentialUnavailable(TemporaryError):
    """The issuer, the Kubernetes API or Redis could not be reached; retry."""
