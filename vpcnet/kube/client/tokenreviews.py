"""TokenReviews: the apiserver says whose a ServiceAccount token is.

The request body and the reading of the answer are pure (:mod:`vpcnet.kube.tokenreview`);
this part only sends it.
"""

from __future__ import annotations

from collections.abc import Sequence

from vpcnet.kube.client.api import KubeApi
from vpcnet.kube.tokenreview import TokenIdentity, identity_from_review, review_request


class TokenReviewsApi(KubeApi):
    def review_token(self, token: str, audiences: Sequence[str]) -> TokenIdentity:
        """Who ``token`` belongs to, by the apiserver's TokenReview, if it is valid for one
        of ``audiences``; :class:`TokenRejected` otherwise."""
        review = self._json(
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            body=review_request(token, audiences),
        )
        return identity_from_review(review, audiences)
