"""The agent's side of the exchange: present the projected token, get the node's login.

Standard library only (it runs in the agent). ``https`` URLs verify the issuer's
certificate against ``ca_file`` (production); ``http`` is for loopback tests.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from http import HTTPStatus

from vpcnet.credentials.errors import CredentialDenied, CredentialUnavailable
from vpcnet.credentials.wire import PATH, decode
from vpcnet.state.acl import NodeCredential


def fetch_node_credential(
    issuer_url: str, token: str, *, ca_file: str | None = None, timeout: float = 5.0
) -> NodeCredential:
    """Trade ``token`` for its node's credential.

    CredentialDenied for a 401/403 (the token is not accepted: retrying with the same
    token will not help), CredentialUnavailable for anything worth retrying.
    """
    if not issuer_url.startswith(("http://", "https://")):
        raise CredentialDenied(f"credential issuer URL must be http(s): {issuer_url!r}")
    context = ssl.create_default_context(cafile=ca_file) if issuer_url.startswith("https") else None
    request = urllib.request.Request(
        issuer_url.rstrip("/") + PATH, data=b"", method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            body = json.loads(resp.read(64 * 1024))
    except urllib.error.HTTPError as e:
        reason = _error_text(e)
        if e.code in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
            raise CredentialDenied(f"credential issuer refused: {reason}", status=e.code) from e
        raise CredentialUnavailable(f"credential issuer answered {e.code}: {reason}") from e
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise CredentialUnavailable(f"credential issuer unreachable: {e}") from e
    try:
        return decode(body)
    except ValueError as e:
        raise CredentialUnavailable(f"malformed answer from the credential issuer: {e}") from e


def _error_text(e: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(e.read(4096))["error"])
    except (ValueError, KeyError, TypeError, OSError):
        return e.reason if isinstance(e.reason, str) else str(e.code)
