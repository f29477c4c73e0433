"""``vpcnet install-cni``: install the CNI plugin and its self-contained runtime on a host.

Run by the agent DaemonSet's init container with the host's /opt/cni/bin and /opt/vpcnet
mounted at the same paths. ``--root`` installs into a mounted host root instead (paths
inside the launcher stay host paths). ``--verify`` then execs the installed plugin's
VERSION with an empty environment (chrooted into ``--root`` if given). ``--agent-socket``
embeds the agent's socket in the launcher (its fast path, see ``launcher.c``). ``--host-sysctls``
sets the sysctls the unprivileged agent cannot (see ``vpcnet.install.sysctl``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from vpcnet.domain import IpFamily
from vpcnet.errors import InstallError


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "install-cni", help="install the CNI plugin (self-contained, no host Python needed)"
    )
    parser.add_argument("--bin-dir", type=Path, default=Path("/opt/cni/bin"),
                        help="CNI plugin directory kubelet/the runtime execs from")
    parser.add_argument("--runtime-dir", type=Path, default=Path("/opt/vpcnet"),
                        help="where the plugin's private runtime lives on the host")
    parser.add_argument("--root", type=Path, default=None,
                        help="install into this mounted host root")
    parser.add_argument("--launcher", type=Path, default=None,
                        help="prebuilt launcher (default: the image's, else compile launcher.c)")
    parser.add_argument("--agent-socket", default=None,
                        help="the agent's socket as the host sees it (the conflist's agentSocket): "
                             "the launcher hands each invocation to the agent there first and "
                             "execs the plugin only when the agent does not answer it")
    parser.add_argument("--host-sysctls", action="store_true",
                        help="also set the host sysctls the agent needs (privileged init)")
    parser.add_argument("--ip-family", default=None,
                        help="with --host-sysctls: the node's IP family, ipv4 | ipv6 | dual; an ipv6 "
                             "or dual node also gets the agent's IPv6 sysctls (default: "
                             "$VPCNET_IP_FAMILY, else ipv4)")
    parser.add_argument("--verify", action="store_true",
                        help="exec the installed plugin's VERSION afterwards")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vpcnet.install import install, verify_plugin
    from vpcnet.install.sysctl import (
        default_route_link,
        device_links,
        ensure_sysctls,
        plan_host_sysctls,
    )

    try:
        family = _ip_family(args.ip_family)
        result = install(args.bin_dir, args.runtime_dir, root=args.root, launcher=args.launcher,
                         agent_socket=args.agent_socket)
        report: dict[str, Any] = result.to_dict()
        if args.host_sysctls:
            primary = default_route_link() if family.wants_ipv6 else ""
            report["sysctls_written"] = ensure_sysctls(plan_host_sysctls(device_links(), family, primary))
        if args.verify:
            started = time.monotonic()
            answer = verify_plugin(result.plugin, root=args.root)
            report["verify"] = {
                "supportedVersions": answer.get("supportedVersions"),
                "seconds": round(time.monotonic() - started, 4),
            }
    except (InstallError, OSError) as e:
        if args.json:
            print(json.dumps({"error": str(e)}))
        else:
            print(f"vpcnet install-cni: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, sort_keys=True))
        return 0
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    return 0


def _ip_family(flag: str | None) -> IpFamily:
    """``--ip-family``, else ``VPCNET_IP_FAMILY`` (what ``Settings.ip_family`` reads), else ipv4."""
    raw = flag if flag is not None else os.environ.get("VPCNET_IP_FAMILY", "")
    try:
        return IpFamily.parse(raw.strip().lower())
    except ValueError:
        raise InstallError(f"invalid ip family {raw!r} (ipv4, ipv6 or dual)") from None
