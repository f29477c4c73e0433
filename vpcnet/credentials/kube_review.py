"""The issuer's TokenReviewer: the apiserver's TokenReview through vpcnet's KubeClient.

The issuer's own ServiceAccount needs ``create`` on ``authentication.k8s.io/tokenreviews``
(manifests/base/credentials.yaml) and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

from vpcnet.credentials.errors import CredentialDenied, CredentialUnavailable
from vpcnet.credentials.review import TokenReviewer
from vpcnet.errors import KubeError
from vpcnet.kube.client import KubeClient
from vpcnet.kube.tokenreview import TokenIdentity, TokenRejected


def kube_reviewer(kube: KubeClient) -> TokenReviewer:
    def review(token: str, audiences: Sequence[str]) -> TokenIdentity:
        try:
            return kube.review_token(token, audiences)
        except TokenRejected as e:
            raise CredentialDenied(str(e), status=401) from e
        except KubeError as e:
            # 5xx/timeouts, but also a 403 for the issuer itself (its RBAC is missing):
            # either way not the agent's fault, so a retryable 503 and a log line.
            raise CredentialUnavailable(f"TokenReview failed: {e}") from e

    return review
