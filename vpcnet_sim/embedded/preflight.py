"""Set-up checks before the embedded stack starts: say what is missing, in words."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

IPV6_SYSCTLS = Path("/proc/sys/net/ipv6")


def check_host(need_netns: bool) -> list[str]:
    problems: list[str] = []
    for binary, package in (("redis-server", "redis-server"), ("celery", "the venv (scripts/setup.sh)")):
        if shutil.which(binary) is None and not _in_venv(binary):
            problems.append(f"{binary} not found: install {package}")
    if need_netns:
        if os.geteuid() != 0:
            problems.append("network namespaces need root: run as root")
        for binary, package in (("ip", "iproute2"), ("iptables", "iptables"),
                                ("ip6tables", "iptables"), ("ping", "iputils-ping")):
            if shutil.which(binary) is None:
                problems.append(f"{binary} not found: apt-get install {package}")
        if not IPV6_SYSCTLS.is_dir():
            # the simulated VPC is dual-stack whatever the cluster's family
            problems.append("IPv6 is disabled in this kernel (ipv6.disable=1): enable it")
        if not problems:
            probe = subprocess.run(["ip", "netns", "list"], capture_output=True)
            if probe.returncode != 0:
                problems.append(f"`ip netns` fails here: {probe.stderr.decode().strip()}")
    return problems


def _in_venv(binary: str) -> bool:
    import sys

    return Path(sys.executable).with_name(binary).exists()
