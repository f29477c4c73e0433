"""scripts/build-helm.sh: the helm it builds is the version tests/helm/go.mod pins, built
for the Kubernetes its client-go targets, and a cached binary is reused without Go."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.helm import BUILD_SCRIPT, REPO, Helm, build_helm

GO_MOD = (REPO / "tests" / "helm" / "go.mod").read_text()


def pinned(module: str) -> str:
    match = re.search(rf"^\s*{re.escape(module)} (v\S+)", GO_MOD, re.MULTILINE)
    assert match, f"{module} not in tests/helm/go.mod"
    return match.group(1)


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(build_helm(), tmp_path_factory.mktemp("helm-home"))


def test_built_helm_is_the_pinned_version(helm: Helm) -> None:
    proc = helm.run("version", "--template", "{{.Version}}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == pinned("helm.sh/helm/v3") == "v3.22.0"
    assert helm.binary.parent.name == "v3.22.0"
    assert REPO not in helm.binary.parents  # the cache is outside the repo


def test_built_helm_targets_the_kubernetes_of_its_client_go(helm: Helm, tmp_path: Path) -> None:
    """The ldflags helm's own Makefile sets: without them `.Capabilities` and lint would
    assume helm's compiled-in default Kubernetes version instead."""
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\n"
        "data: {kube: {{ .Capabilities.KubeVersion.Version | quote }}}\n"
    )
    proc = helm.run("template", "probe", str(chart))
    assert proc.returncode == 0, proc.stderr
    minor = pinned("k8s.io/client-go").split(".")[1]
    assert f'kube: "v1.{minor}.0"' in proc.stdout


def test_a_cached_binary_is_reused_without_go(tmp_path: Path) -> None:
    """No Go on PATH and a binary in the cache: the script prints its path and builds
    nothing (a cold build takes minutes; setup runs the script every time)."""
    cached = tmp_path / "helm" / pinned("helm.sh/helm/v3") / "helm"
    cached.parent.mkdir(parents=True)
    cached.write_text("#!/bin/sh\n")
    cached.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "VPCNET_CACHE": str(tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["build-helm: v3.22.0 cached", str(cached)]


def test_without_a_cached_binary_and_without_go_it_says_so(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "VPCNET_CACHE": str(tmp_path), "HOME": str(tmp_path)}
    assert not any(os.access(Path(d) / "go", os.X_OK) for d in env["PATH"].split(":"))
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "go is not on PATH" in proc.stderr
    assert not (tmp_path / "helm").exists()  # nothing half-made in the cache
