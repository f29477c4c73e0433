"""`vpcnet demo --ip-family ipv4|ipv6|dual` end to end: every pod gets its families' addresses,
the connectivity matrix passes per family (IPv4 SNAT'd to the node, IPv6 with the pod's
own address), one pod per CNI spec version goes ADD -> CHECK -> DEL -> DEL, the audit
holds, and nothing is left behind."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vpcnet_sim.embedded.stack import StackOptions

pytestmark = pytest.mark.timeout(420)

VPCNET = str(Path(sys.executable).with_name("vpcnet"))
DOCUMENTATION_V6 = ipaddress.IPv6Network("2001:db8::/32")  # the simulated VPC's /56 lies in it


def _netns() -> set[str]:
    """The demos' namespaces (prefix vpcd<random>-)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith("vpcd")}


def run_demo(tmp_path: Path, family: str, kube: str) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.Popen(
        [VPCNET, "demo", "--json", "--ip-family", family, "--kube", kube,
         "--workdir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the demo unwinds and cleans up
        stdout, stderr = proc.communicate(timeout=60)
        raise AssertionError(f"demo hung; its output:\n{stderr[-3000:]}") from None
    assert stdout.strip(), stderr[-3000:]
    return proc.returncode, json.loads(stdout.strip().splitlines()[-1]), stderr


def assert_cells_pass(matrix: dict[str, dict[str, str]]) -> None:
    assert sorted(matrix) == ["node-a", "node-b", "node-c"]
    for src, row in matrix.items():
        assert sorted(row) == ["node-a", "node-b", "node-c", "outside"]
        for dst, cell in row.items():
            ok, _, rest = cell.partition("/")
            total = rest.split()[0]
            assert ok == total and int(total) > 0, (src, dst, cell)


FAMILIES = {"ipv4": ["ipv4"], "ipv6": ["ipv6"], "dual": ["ipv4", "ipv6"]}


# every family on the emulator; dual on the real kube-apiserver too, which validates the
# pods' two podIPs (one per family, the first equal to podIP)
CASES = [("ipv4", "emulator"), ("ipv6", "emulator"), ("dual", "emulator"),
         pytest.param("dual", "apiserver", marks=pytest.mark.controlplane)]


@pytest.mark.parametrize(("family", "kube"), CASES)
def test_demo_runs_each_family_end_to_end(
    tmp_path: Path, family: str, kube: str, request: pytest.FixtureRequest
) -> None:
    if kube == "apiserver":
        request.getfixturevalue("controlplane_built")  # built, not building inside the demo's timeout
    before = _netns()
    rc, report, stderr = run_demo(tmp_path, family, kube)
    assert rc == 0, (report.get("error"), report.get("lifecycle"), stderr[-3000:])
    assert report["ok"] is True and report["error"] is None
    assert report["ip_family"] == family
    assert report["kube"]["server"] == ("kube-apiserver" if kube == "apiserver" else "emulator")
    families = FAMILIES[family]

    # Twelve pods, each with one distinct address per family of the cluster's.
    pods = report["pods"]
    assert len(pods) == 12
    for p in pods:
        assert len(p["ips"]) == len(families), p
        assert p["ip"] == p["ips"][0]
        for name in ("ipv4", "ipv6"):
            assert bool(p[name]) == (name in families), p
    for name in families:
        assert len({p[name] for p in pods}) == 12
    if "ipv6" in families:
        # A node's IPv6 pods share the node's one /80; no two nodes share one.
        slash80: dict[str, set[ipaddress.IPv6Network]] = {p["node"]: set() for p in pods}
        for p in pods:
            assert ipaddress.IPv6Address(p["ipv6"]) in DOCUMENTATION_V6, p
            slash80[p["node"]].add(ipaddress.IPv6Network(f"{p['ipv6']}/80", strict=False))
        assert all(len(nets) == 1 for nets in slash80.values()), slash80
        assert len(set().union(*slash80.values())) == 3

    # The matrix per family, every cell passing; pods reach the outside SNAT'd to the
    # node's primary IPv4, but with their own IPv6 address.
    assert sorted(report["connectivity_by_family"]) == families
    for name in families:
        assert_cells_pass(report["connectivity_by_family"][name])
    assert report["connectivity"] == report["connectivity_by_family"][families[0]]
    for name, how in (("ipv4", " via "), ("ipv6", " from the pod's own address")):
        for row in report["connectivity_by_family"].get(name, {}).values():
            assert how in row["outside"], row

    # ADD -> CHECK -> DEL -> DEL for every spec version, each with its family's addresses.
    assert sorted(report["lifecycle"]) == ["0.4.0", "1.0.0", "1.1.0"]
    for version, outcome in report["lifecycle"].items():
        assert outcome["ok"] is True and outcome["error"] is None, (version, outcome)
        versions = sorted(f"ipv{ipaddress.ip_address(a).version}" for a in outcome["ips"])
        assert versions == families, (version, outcome)

    assert report["audit"] == []
    assert _netns() <= before


def test_a_bad_ip_family_is_refused_before_anything_starts(tmp_path: Path) -> None:
    before = _netns()
    proc = subprocess.run(
        [VPCNET, "demo", "--json", "--ip-family", "ipv5", "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and "--ip-family" in proc.stderr and "ipv5" in proc.stderr
    assert not (tmp_path / "demo").exists() and _netns() <= before
    with pytest.raises(ValueError, match="ip_family must be one of ipv4, ipv6, dual"):
        StackOptions(workdir=tmp_path, ip_family="ipv5")
