"""Reading a TokenReview answer: only an authenticated token, for our audience, bound to a
pod on the node asked about, yields that node's identity."""

from __future__ import annotations

from typing import Any

import pytest

from vpcnet.kube.tokenreview import (
    NODE_NAME,
    NODE_UID,
    POD_NAME,
    POD_UID,
    TokenRejected,
    identity_from_review,
    review_request,
)

AUD = ["vpcnet.io/agent"]


def answer(**status: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "authenticated": True,
        "audiences": AUD,
        "user": {
            "username": "system:serviceaccount:vpcnet-system:vpcnet-agent",
            "uid": "u-1",
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "extra": {
                POD_NAME: ["agent-x"], POD_UID: ["p-1"], NODE_NAME: ["ip-10-0-0-1"],
                NODE_UID: ["n-1"],
            },
        },
    }
    base.update(status)
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": base}


def test_a_pod_bound_token_names_its_pod_and_node() -> None:
    who = identity_from_review(answer(), AUD)
    assert who.service_account == ("vpcnet-system", "vpcnet-agent")
    assert (who.pod_name, who.pod_uid, who.node_name, who.node_uid) == (
        "agent-x", "p-1", "ip-10-0-0-1", "n-1"
    )
    assert who.require_node("ip-10-0-0-1") is who


def test_a_token_for_one_node_does_not_pass_for_another() -> None:
    with pytest.raises(TokenRejected, match="belongs to node ip-10-0-0-1, not ip-10-0-0-2"):
        identity_from_review(answer(), AUD).require_node("ip-10-0-0-2")


def test_a_token_not_bound_to_a_pod_proves_no_node() -> None:
    unbound = answer()
    unbound["status"]["user"]["extra"] = {}
    with pytest.raises(TokenRejected, match="not bound to a pod"):
        identity_from_review(unbound, AUD).require_node("ip-10-0-0-1")


def test_refused_and_wrong_audience_tokens_raise() -> None:
    with pytest.raises(TokenRejected, match="invalid bearer token"):
        identity_from_review(answer(authenticated=False, error="invalid bearer token"), AUD)
    with pytest.raises(TokenRejected, match="not for"):
        identity_from_review(answer(audiences=["other"]), AUD)


def test_a_review_always_names_an_audience() -> None:
    assert review_request("t", AUD)["spec"] == {"token": "t", "audiences": AUD}
    with pytest.raises(ValueError, match="audience"):
        review_request("t", [])
    with pytest.raises(TokenRejected):
        review_request("", AUD)
