"""`vpcnet demo` end to end: the whole system, as a newcomer runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def _netns() -> set[str]:
    """The demos' namespaces (prefix vpcd<random>-): other tests running on the machine
    at the same time create and remove their own."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    names = {line.split()[0] for line in out.splitlines() if line.strip()}
    return {n for n in names if n.startswith("vpcd")}


# what /version of each server says: the emulator's own, the release the build stamped
KUBE_REPORTED = {
    "emulator": {"server": "emulator", "version": "v1.33.0-vpcnet-sim"},
    "apiserver": {"server": "kube-apiserver", "version": "v1.37.2"},
}


@pytest.mark.parametrize("kube", ["emulator", pytest.param("apiserver", marks=pytest.mark.controlplane)])
def test_demo_runs_the_whole_system_and_cleans_up(tmp_path: Path, kube: str, request: pytest.FixtureRequest) -> None:
    if kube == "apiserver":
        request.getfixturevalue("controlplane_built")  # built, not building inside the demo's timeout
    before = _netns()
    vpcnet = str(Path(sys.executable).with_name("vpcnet"))
    proc = subprocess.Popen(
        [vpcnet, "demo", "--json", "--kube", kube, "--workdir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the demo unwinds and cleans up its processes and netns
        stdout, stderr = proc.communicate(timeout=60)
        raise AssertionError(f"demo hung; its output:\n{stderr[-3000:]}") from None
    assert stdout.strip(), stderr[-3000:]
    report = json.loads(stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, (report.get("error"), stderr[-3000:])
    assert report["ok"] is True and report["error"] is None
    assert report["kube"] == KUBE_REPORTED[kube]
    if kube == "apiserver":
        # every component had its own ServiceAccount token (kubeconfig per component)
        tokens = {
            p.stem: yaml.safe_load(p.read_text())["users"][0]["user"]["token"]
            for p in (tmp_path / "demo" / "kube").glob("*.kubeconfig")
        }
        assert sorted(tokens) == ["agent", "beat", "flower", "operator", "watcher", "workers"]
        assert len(set(tokens.values())) == len(tokens)

    # Three nodes of different types, each provisioned with its type's full ENI count.
    nodes = {n["name"]: n for n in report["nodes"]}
    assert sorted(nodes) == ["node-a", "node-b", "node-c"]
    assert len({n["instance_type"] for n in nodes.values()}) == 3
    expected_enis = {"t3.medium": 3, "m5.large": 3, "c5.xlarge": 4}
    for n in nodes.values():
        assert len(n["enis"]) == expected_enis[n["instance_type"]], n
        assert n["agent_ready"] and n["phase"] == "ready" and "vpcnet.io/not-ready" not in n["taints"]

    # Twelve pods with twelve distinct VPC addresses, every one reachable from every other
    # and SNAT'd to its node's primary IP on the way out of the VPC.
    ips = [p["ip"] for p in report["pods"]]
    assert len(ips) == 12 and len(set(ips)) == 12
    for src, row in report["connectivity"].items():
        for dst, cell in row.items():
            ok, _, rest = cell.partition("/")
            total = rest.split()[0]
            assert ok == total and int(total) > 0, (src, dst, cell)
    assert report["audit"] == []

    # Nothing left behind: no namespace of the demo, no child process holding its workdir.
    assert _netns() <= before
