"""Who a ServiceAccount token belongs to, as the apiserver's TokenReview says.

A projected token bound to a Pod names the pod and, since Kubernetes 1.32, the node it
runs on (``user.extra``). That node name comes from the apiserver, not from the token's
bearer, so the control plane can hand a node's own credential to the agent that presents
the token and to no other (issue 11's node isolation). :meth:`KubeClient.review_token`
makes the call; this module builds the request and reads the answer (pure: no client).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vpcnet.errors import PermanentError

POD_NAME = "authentication.kubernetes.io/pod-name"
POD_UID = "authentication.kubernetes.io/pod-uid"
NODE_NAME = "authentication.kubernetes.io/node-name"
NODE_UID = "authentication.kubernetes.io/node-uid"
_SA_PREFIX = "system:serviceaccount:"


class TokenRejected(PermanentError):
    """The token is not valid for this audience, or does not prove what was asked."""


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    """The authenticated user behind a token (the apiserver's word, not the token's)."""

    username: str
    uid: str
    groups: tuple[str, ...]
    audiences: tuple[str, ...]  # those of the requested audiences the token is valid for
    pod_name: str | None
    pod_uid: str | None
    node_name: str | None
    node_uid: str | None

    @property
    def service_account(self) -> tuple[str, str] | None:
        """(namespace, name) for a ServiceAccount token, else None."""
        if not self.username.startswith(_SA_PREFIX):
            return None
        namespace, sep, name = self.username[len(_SA_PREFIX):].partition(":")
        return (namespace, name) if sep and namespace and name else None

    def require_node(self, node_name: str) -> TokenIdentity:
        """This identity, if its token is bound to a pod on ``node_name``; else raises."""
        if self.pod_name is None or self.node_name is None:
            raise TokenRejected(f"{self.username}: the token is not bound to a pod on a node")
        if self.node_name != node_name:
            raise TokenRejected(
                f"{self.username}: the token belongs to node {self.node_name}, not {node_name}"
            )
        return self


def review_request(token: str, audiences: Sequence[str]) -> dict[str, Any]:
    """The TokenReview object to create for ``token``."""
    if not token:
        raise TokenRejected("empty token")
    if not audiences:
        # Without audiences the apiserver accepts a token meant for any of its own, so a
        # token issued for another service would pass: always name ours.
        raise ValueError("review_request: at least one audience is required")
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": list(audiences)},
    }


def identity_from_review(review: Mapping[str, Any], audiences: Sequence[str]) -> TokenIdentity:
    """The identity in a TokenReview answer; :class:`TokenRejected` unless authenticated
    for one of ``audiences``."""
    status = review.get("status") or {}
    if not status.get("authenticated"):
        raise TokenRejected(f"token refused: {status.get('error') or 'not authenticated'}")
    valid_for = tuple(str(a) for a in status.get("audiences") or ())
    if not set(valid_for) & set(audiences):
        raise TokenRejected(f"token valid for {list(valid_for)}, not for {list(audiences)}")
    user = status.get("user") or {}
    extra: Mapping[str, Any] = user.get("extra") or {}

    def one(key: str) -> str | None:
        values = list(extra.get(key) or [])
        return str(values[0]) if len(values) == 1 and values[0] else None

    username = str(user.get("username") or "")
    if not username:
        raise TokenRejected("authenticated token without a username")
    return TokenIdentity(
        username=username,
        uid=str(user.get("uid") or ""),
        groups=tuple(str(g) for g in user.get("groups") or ()),
        audiences=valid_for,
        pod_name=one(POD_NAME),
        pod_uid=one(POD_UID),
        node_name=one(NODE_NAME),
        node_uid=one(NODE_UID),
    )
