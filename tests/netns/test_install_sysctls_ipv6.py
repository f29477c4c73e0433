"""``vpcnet install-cni --host-sysctls --ip-family ipv6|dual`` sets the agent's IPv6 host
sysctls (the agent's /proc/sys is read-only, as for the IPv4 ones), in a throwaway
network namespace (never the host's): accept_ra=2 on the default route's link before
forwarding, IPv6 forwarding, NDP proxying without delay; an ipv4 node gets none; an
IPv6 node with no default route fails before writing anything."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vpcnet.domain import IpFamily
from vpcnet.errors import InstallError
from vpcnet.host_sysctls import (
    IP_FORWARD,
    IPV6_FORWARDING,
    accept_ra,
    proxy_delay,
    proxy_ndp,
)
from vpcnet.install.sysctl import plan_host_sysctls

LINK = "ens5"  # the node's primary ENI, as a veth (both ends in the namespace) carrying the default route


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"vpc6s-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=10)


def ip(ns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", ns, *args], check=True, timeout=10)


def read(ns: str, key: str) -> str:
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", f"/proc/sys/{key}"],
                         capture_output=True, text=True, check=True, timeout=10)
    return out.stdout.strip()


def install(ns: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "vpcnet.cli.main", "install-cni",
            "--bin-dir", str(tmp / "bin"), "--runtime-dir", str(tmp / "rt"),
            "--host-sysctls", "--json", *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)


def primary_with_default_route(ns: str) -> None:
    ip(ns, "link", "add", LINK, "type", "veth", "peer", "name", f"{LINK}-peer")
    ip(ns, "addr", "add", "10.0.1.10/24", "dev", LINK)
    ip(ns, "link", "set", LINK, "up")
    ip(ns, "route", "add", "default", "via", "10.0.1.1", "dev", LINK)


@pytest.mark.parametrize("family", ["ipv6", "dual"])
def test_ipv6_sysctls_converge_in_a_namespace(netns: str, tmp_path: Path, family: str) -> None:
    primary_with_default_route(netns)
    before = {k: read(netns, k) for k in (accept_ra(LINK), IPV6_FORWARDING, proxy_ndp("default"))}
    assert before == {accept_ra(LINK): "1", IPV6_FORWARDING: "0", proxy_ndp("default"): "0"}
    first = install(netns, tmp_path, "--ip-family", family)
    assert first.returncode == 0, first.stderr
    written = json.loads(first.stdout)["sysctls_written"]
    assert written[accept_ra(LINK)] == "2" and written[IPV6_FORWARDING] == "1"
    assert read(netns, accept_ra(LINK)) == "2" and read(netns, IPV6_FORWARDING) == "1"
    assert read(netns, proxy_ndp("default")) == "1"
    # (per-link proxy keys go to device-backed links, which a veth is not: the plan test)
    assert read(netns, IP_FORWARD) == "1"
    # a link created afterwards (a hot-plugged ENI) inherits proxy_ndp (proxy_delay's
    # default is the initial namespace's only: not settable here)
    ip(netns, "link", "add", "ens6", "type", "veth", "peer", "name", "ens6-peer")
    assert read(netns, proxy_ndp("ens6")) == "1"
    again = install(netns, tmp_path, "--ip-family", family)
    assert again.returncode == 0 and json.loads(again.stdout)["sysctls_written"] == {}


def test_an_ipv4_node_gets_no_ipv6_sysctls(netns: str, tmp_path: Path) -> None:
    primary_with_default_route(netns)
    done = install(netns, tmp_path, "--ip-family", "ipv4")
    assert done.returncode == 0, done.stderr
    assert not any("ipv6" in k for k in json.loads(done.stdout)["sysctls_written"])
    assert read(netns, IPV6_FORWARDING) == "0" and read(netns, accept_ra(LINK)) == "1"


def test_the_family_comes_from_the_environment_and_a_bad_one_is_refused(
    netns: str, tmp_path: Path,
) -> None:
    primary_with_default_route(netns)
    bad = install(netns, tmp_path, "--ip-family", "ipv7")
    assert bad.returncode == 1 and "invalid ip family 'ipv7'" in json.loads(bad.stdout)["error"]
    assert read(netns, IP_FORWARD) == "0"  # nothing written
    env_argv = ["env", "VPCNET_IP_FAMILY=dual"]
    argv = ["ip", "netns", "exec", netns, *env_argv, sys.executable, "-m", "vpcnet.cli.main",
            "install-cni", "--bin-dir", str(tmp_path / "bin"), "--runtime-dir", str(tmp_path / "rt"),
            "--host-sysctls", "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert read(netns, IPV6_FORWARDING) == "1"


def test_an_ipv6_node_without_a_default_route_fails_before_writing(netns: str, tmp_path: Path) -> None:
    failed = install(netns, tmp_path, "--ip-family", "ipv6")
    assert failed.returncode == 1
    assert "primary ENI's link" in json.loads(failed.stdout)["error"]
    assert read(netns, IP_FORWARD) == "0" and read(netns, IPV6_FORWARDING) == "0"


def test_the_plan_writes_accept_ra_before_forwarding() -> None:
    plan = list(plan_host_sysctls(["ens5", "ens6"], IpFamily.DUAL, "ens5"))
    assert plan.index(accept_ra("ens5")) < plan.index(IPV6_FORWARDING)
    assert accept_ra("ens6") not in plan  # a secondary ENI must not learn default routes
    assert {proxy_ndp("ens5"), proxy_ndp("ens6"), proxy_delay("ens6")} <= set(plan)
    with pytest.raises(InstallError):
        plan_host_sysctls(["ens5"], IpFamily.IPV6, "../x")


def test_an_ipv6_default_route_alone_names_the_primary(netns: str, tmp_path: Path) -> None:
    ip(netns, "link", "add", LINK, "type", "veth", "peer", "name", f"{LINK}-peer")
    ip(netns, "link", "set", f"{LINK}-peer", "up")
    ip(netns, "link", "set", LINK, "up")
    ip(netns, "-6", "addr", "add", "2001:db8:0:1::10/64", "dev", LINK, "nodad")
    ip(netns, "-6", "route", "add", "default", "via", "2001:db8:0:1::1", "dev", LINK)
    done = install(netns, tmp_path, "--ip-family", "ipv6")
    assert done.returncode == 0, done.stderr
    assert read(netns, accept_ra(LINK)) == "2" and read(netns, IPV6_FORWARDING) == "1"
