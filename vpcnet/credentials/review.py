"""What the issuer needs from a TokenReview: who the token belongs to, and its pod's node.

A small protocol so the issuer does not depend on how the review is done;
:mod:`vpcnet.kube.tokenreview` is the real one (``POST
/apis/authentication.k8s.io/v1/tokenreviews``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class ReviewedToken(Protocol):
    """An authenticated token's identity, as the apiserver states it."""

    @property
    def username(self) -> str: ...  # system:serviceaccount:<namespace>:<name>

    @property
    def pod_name(self) -> str | None: ...  # extra authentication.kubernetes.io/pod-name

    @property
    def node_name(self) -> str | None: ...  # extra authentication.kubernetes.io/node-name


class TokenReviewer(Protocol):
    def __call__(self, token: str, audiences: Sequence[str]) -> ReviewedToken:
        """The token's identity if the apiserver authenticates it for one of ``audiences``.

        Raises CredentialDenied(status=401) when it does not, CredentialUnavailable when
        the apiserver cannot be asked.
        """
        ...
