"""The control plane under test is the one the module pins, built once and reused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.apiserver import CONTROLPLANE_DIR, KUBE_VERSION, ApiServer

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "tests" / "controlplane" / "go.mod"


def test_the_apiserver_reports_the_release_it_was_built_from(kube_apiserver: ApiServer) -> None:
    assert kube_apiserver.version == KUBE_VERSION
    assert f"k8s.io/kubernetes {KUBE_VERSION}\n" in MODULE.read_text()


def test_etcd_is_the_version_kubernetes_pins() -> None:
    pinned = next(
        line.split()[1]
        for line in MODULE.read_text().splitlines()
        if line.strip().startswith("go.etcd.io/etcd/server/v3 ")
    )
    out = subprocess.run(
        [str(CONTROLPLANE_DIR / "etcd"), "--version"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    assert f"etcd Version: {pinned.removeprefix('v')}\n" in out


def test_a_current_build_is_reused_not_redone() -> None:
    binary = CONTROLPLANE_DIR / "kube-apiserver"
    before = binary.stat().st_mtime_ns
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-controlplane.sh")],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert proc.stdout.strip() == str(CONTROLPLANE_DIR)
    assert "controlplane: cached" in proc.stderr
    assert binary.stat().st_mtime_ns == before


def test_without_the_binaries_apiserver_tests_fail_rather_than_skip(tmp_path: Path) -> None:
    test = tmp_path / "test_needs_apiserver.py"
    test.write_text("def test_it(kube_apiserver):\n    pass\n")
    env = {**os.environ, "VPCNET_CACHE": str(tmp_path / "empty-cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "tests.fixtures.apiserver", "--rootdir", str(tmp_path), str(test)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "etcd, kube-apiserver not built in" in proc.stdout
    assert "1 error" in proc.stdout and "skipped" not in proc.stdout
