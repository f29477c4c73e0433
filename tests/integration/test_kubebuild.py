"""``vpcnet demo --kube apiserver`` builds the control plane when the cache lacks it: the
build script runs, its progress lines are handed on as they come, a failure or a build
that leaves a binary missing is a clear error. The script here stands in for
scripts/build-controlplane.sh (a cold build takes minutes); the real one is run by
tests/integration/test_apiserver_controlplane.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpcnet_sim.embedded import kubebuild
from vpcnet_sim.embedded.kubeapi import KUBE_VERSION, ControlPlaneError


def fake_build(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "build.sh"
    script.write_text("set -eu\n" + body)
    return script


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VPCNET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "controlplane" / KUBE_VERSION


def test_a_missing_control_plane_is_built_with_progress(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kubebuild, "SCRIPT", fake_build(tmp_path, f"""
echo "controlplane: [0s] downloading modules" >&2
echo "controlplane: etcd: 250 packages compiled" >&2
mkdir -p {cache}
touch {cache}/etcd {cache}/kube-apiserver
echo {cache}
"""))
    lines: list[str] = []
    assert kubebuild.ensure_controlplane(lines.append) == cache
    assert lines[1:] == ["controlplane: [0s] downloading modules",
                         "controlplane: etcd: 250 packages compiled"]
    assert lines[0].startswith("building the control plane into ")
    # built now: the next run does not call the script at all
    monkeypatch.setattr(kubebuild, "SCRIPT", fake_build(tmp_path, "exit 3\n"))
    assert kubebuild.ensure_controlplane(lines.append) == cache


def test_a_failed_build_is_an_error_with_its_output(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kubebuild, "SCRIPT", fake_build(
        tmp_path, 'echo "go: module k8s.io/kubernetes@v1.37.2: not found" >&2\nexit 1\n'))
    with pytest.raises(ControlPlaneError, match="not found"):
        kubebuild.ensure_controlplane(lambda line: None)


def test_a_build_that_leaves_a_binary_missing_is_an_error(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kubebuild, "SCRIPT", fake_build(
        tmp_path, f"mkdir -p {cache}\ntouch {cache}/etcd\necho {cache}\n"))
    with pytest.raises(ControlPlaneError, match="kube-apiserver"):
        kubebuild.ensure_controlplane(lambda line: None)
