"""``vpcnet install-cni --host-sysctls`` in a throwaway network namespace (never the host's)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vpcnet.errors import InstallError
from vpcnet.install.sysctl import plan_host_sysctls


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"vpce5-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=10)


def _read(ns: str, key: str) -> str:
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", f"/proc/sys/{key}"],
                         capture_output=True, text=True, check=True, timeout=10)
    return out.stdout.strip()


def test_host_sysctls_converge_in_a_namespace(netns: str, tmp_path: Path) -> None:
    subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w",
                    "net.ipv4.ip_forward=0", "net.ipv4.conf.default.rp_filter=1"],
                   check=True, timeout=10)
    argv = ["ip", "netns", "exec", netns, sys.executable, "-m", "vpcnet.cli.main", "install-cni",
            "--bin-dir", str(tmp_path / "bin"), "--runtime-dir", str(tmp_path / "rt"),
            "--host-sysctls", "--json"]
    first = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stderr
    for key, value in plan_host_sysctls([]).items():
        assert _read(netns, key) == value
    assert json.loads(first.stdout)["sysctls_written"] == {
        "net/ipv4/conf/default/rp_filter": "2", "net/ipv4/ip_forward": "1"}
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0 and json.loads(again.stdout)["sysctls_written"] == {}


def test_plan_covers_device_links() -> None:
    plan = plan_host_sysctls(["ens5", "ens6"])
    assert plan["net/ipv4/conf/ens6/rp_filter"] == "2"
    with pytest.raises(InstallError):
        plan_host_sysctls(["../x"])
