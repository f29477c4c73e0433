"""Node credentials: each agent trades its projected ServiceAccount token for its own
node's Redis ACL user (``issuer`` and ``server`` run in the control plane; ``client`` and
``provider`` in the agent). Like Vault's Kubernetes auth: the token is verified with a
TokenReview and the node is taken from the token, never from the request."""
