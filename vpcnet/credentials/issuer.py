"""The control plane's side: verify an agent's token, answer with its node's credential."""

from __future__ import annotations

import logging

from vpcnet.credentials.errors import CredentialUnavailable
from vpcnet.credentials.policy import node_of
from vpcnet.credentials.review import TokenReviewer
from vpcnet.errors import StateError
from vpcnet.state.acl import NodeCredential
from vpcnet.state.acl_users import NodeAclUsers

log = logging.getLogger(__name__)

AUDIENCE = "vpcnet-credentials"


class CredentialIssuer:
    def __init__(
        self,
        review: TokenReviewer,
        users: NodeAclUsers,
        *,
        agent_username: str,
        audience: str = AUDIENCE,
    ) -> None:
        self._review = review
        self.users = users
        self.agent_username = agent_username
        self.audience = audience

    def issue(self, token: str) -> NodeCredential:
        """The credential of the node ``token`` is bound to.

        CredentialDenied (401/403) for a token that is not an agent's on a node,
        CredentialUnavailable when Kubernetes or Redis cannot be reached.
        """
        identity = self._review(token, (self.audience,))
        node = node_of(identity, agent_username=self.agent_username)
        try:
            credential = self.users.issue(node)
        except StateError as e:
            raise CredentialUnavailable(str(e)) from e
        log.info("issued the Redis credential of node %s to pod %s", node, identity.pod_name)
        return credential
