"""Which node a reviewed token may have the credential of. Pure.

Only the agent's ServiceAccount qualifies, and the node is the one the apiserver bound
the token to (the pod's node, ``authentication.kubernetes.io/node-name``), never anything
the caller says: a compromised node holds only tokens of pods on itself.
"""

from __future__ import annotations

from vpcnet.credentials.errors import CredentialDenied
from vpcnet.credentials.review import ReviewedToken
from vpcnet.state.acl import check_node_name


def service_account_username(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def node_of(identity: ReviewedToken, *, agent_username: str) -> str:
    """The node whose credential ``identity`` may have; CredentialDenied(403) otherwise."""
    if identity.username != agent_username:
        raise CredentialDenied(
            f"{identity.username!r} is not the agent's ServiceAccount ({agent_username})"
        )
    if not identity.pod_name or not identity.node_name:
        # A legacy Secret token or a TokenRequest not bound to a pod names no node.
        raise CredentialDenied("the token is not bound to a pod on a node")
    try:
        return check_node_name(identity.node_name)
    except ValueError as e:
        raise CredentialDenied(str(e)) from e
