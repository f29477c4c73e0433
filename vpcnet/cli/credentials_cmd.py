"""``vpcnet credentials``: the node credential issuer (control plane, 2 replicas).

An agent POSTs its projected ServiceAccount token; the issuer reviews it with the
apiserver (TokenReview), and answers with the Redis login of the node the token is bound
to, creating and rotating that node's ACL user (``vpcnet.state.acl``). It also removes
expired passwords and the users of nodes that stopped asking, every ``--sweep-seconds``.

Settings from the environment (``VPCNET_*``): ``VPCNET_REDIS_URL`` (the ``credentials``
ACL user of docs/deploy.md, step 4), ``VPCNET_CLUSTER_NAME``, ``VPCNET_KUBECONFIG``
(unset = in-cluster). Serve HTTPS (``--tls-cert``/``--tls-key``) anywhere but loopback:
the tokens and passwords of every node cross this connection.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import ssl
import sys
import threading
from types import FrameType
from typing import Any

from vpcnet.errors import ConfigError, VpcnetError


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "credentials",
        help="serve node agents their own Redis login, in exchange for their ServiceAccount token",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--listen", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--tls-cert", help="PEM certificate chain (required off loopback)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--audience", default="vpcnet-credentials",
                        help="the audience of the agents' projected tokens")
    parser.add_argument("--agent-service-account", default="vpcnet-system/vpcnet-agent",
                        help="NAMESPACE/NAME of the agents' ServiceAccount")
    parser.add_argument("--ttl-seconds", type=float, default=3600.0,
                        help="agents fetch a new password within this")
    parser.add_argument("--grace-seconds", type=float, default=300.0,
                        help="a password keeps working this long after its TTL")
    parser.add_argument("--sweep-seconds", type=float, default=60.0)
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    parser.set_defaults(func=run)


def tls_context(cert: str | None, key: str | None, listen: str) -> ssl.SSLContext | None:
    """The server's TLS context; ConfigError for plain HTTP anywhere but loopback."""
    if bool(cert) != bool(key):
        raise ConfigError("--tls-cert and --tls-key go together")
    if not cert:
        try:
            loopback = ipaddress.ip_address(listen).is_loopback
        except ValueError:
            loopback = listen == "localhost"
        if not loopback:
            raise ConfigError(f"plain HTTP on {listen}: serve TLS (--tls-cert/--tls-key) off loopback")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load the TLS certificate {cert}: {e}") from e
    return context


def run(args: argparse.Namespace) -> int:
    from vpcnet.observability.logs import configure_logging

    configure_logging("credentials", args.log_level)
    log = logging.getLogger("vpcnet.credentials")
    try:
        issuer, server, users = _build(args)
    except (ConfigError, ValueError) as e:
        print(f"vpcnet credentials: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def sweep() -> None:
        while not stop.wait(args.sweep_seconds):
            try:
                removed = users.sweep()
                if removed:
                    log.info("removed %d expired node passwords", removed)
            except VpcnetError as e:
                log.warning("sweep of node ACL users failed: %s", e)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        threading.Thread(target=server.stop, daemon=True).start()  # shutdown() must not run in serve's thread

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=sweep, name="sweep", daemon=True).start()
    log.info("serving node credentials on %s (audience %s)", server.url, issuer.audience)
    server.serve_forever()
    return 0


def _build(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from vpcnet.credentials.issuer import CredentialIssuer
    from vpcnet.credentials.kube_review import kube_reviewer
    from vpcnet.credentials.policy import service_account_username
    from vpcnet.credentials.server import CredentialServer
    from vpcnet.kube.client import KubeClient
    from vpcnet.settings import Settings
    from vpcnet.state.acl import check_cluster_name
    from vpcnet.state.acl_users import NodeAclUsers
    from vpcnet.state.connection import connect

    namespace, sep, name = args.agent_service_account.partition("/")
    if not sep or not namespace or not name:
        raise ConfigError(f"--agent-service-account must be NAMESPACE/NAME: {args.agent_service_account!r}")
    context = tls_context(args.tls_cert, args.tls_key, args.listen)
    settings = Settings.from_env()
    check_cluster_name(settings.cluster_name)
    # Through connect(), like every component: a redis+sentinel:// URL follows the primary
    # the sentinels name, where the agents log in.
    client = connect(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    users = NodeAclUsers(client, settings.cluster_name, ttl_seconds=args.ttl_seconds,
                         grace_seconds=args.grace_seconds)
    kube = KubeClient.from_settings(settings, component="credentials")
    issuer = CredentialIssuer(kube_reviewer(kube), users, audience=args.audience,
                              agent_username=service_account_username(namespace, name))
    try:
        server = CredentialServer(issuer, args.listen, args.port, ssl_context=context)
    except OSError as e:
        raise ConfigError(f"cannot listen on {args.listen}:{args.port}: {e}") from e
    return issuer, server, users
