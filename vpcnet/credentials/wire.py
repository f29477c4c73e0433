"""The issuer's HTTP exchange, one owner for both sides: the path and the answer's JSON."""

from __future__ import annotations

from typing import Any

from vpcnet.state.acl import NodeCredential

PATH = "/v1/node-credential"


def encode(cred: NodeCredential) -> dict[str, Any]:
    return {"node": cred.node, "username": cred.username, "password": cred.password,
            "ttl_seconds": cred.ttl_seconds}


def decode(body: Any) -> NodeCredential:
    """ValueError when ``body`` is not an answer of ``encode``'s shape."""
    try:
        cred = NodeCredential(
            node=str(body["node"]), username=str(body["username"]),
            password=str(body["password"]), ttl_seconds=float(body["ttl_seconds"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"not a node credential: {e!r}") from e
    if not cred.password or cred.ttl_seconds <= 0:
        raise ValueError("not a node credential: empty password or TTL")
    return cred
