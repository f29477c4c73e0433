"""Who is who on the real apiserver: the RBAC of manifests/, as kustomize renders it, and
one ServiceAccount token (``TokenRequest``) per vpcnet component.

Only the access objects are applied (Namespace, ServiceAccounts, Roles, Bindings, the
ConfigMap): nothing here runs the Deployments, the embedded stack starts the processes.
No controller-manager runs either, so the ``default`` ServiceAccounts it would create
(pods cannot be admitted without one) are created here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import utils as k8s_utils

from vpcnet_sim.embedded.kubeapi import ApiServerEndpoint, ControlPlaneError

NAMESPACE = "vpcnet-system"
BASE = Path(__file__).resolve().parents[2] / "manifests" / "base"
ACCESS_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                "RoleBinding", "ConfigMap")
# component of the embedded stack -> its ServiceAccount in manifests/base/rbac.yaml
COMPONENT_ACCOUNTS = {
    "watcher": "vpcnet-watcher",
    "workers": "vpcnet-workers",
    "beat": "vpcnet-beat",
    "flower": "vpcnet-flower",
    "agent": "vpcnet-agent",
    "operator": "vpcnet-operator",
}
# `vpcnet audit|status|inspect` run with an operator's kubeconfig, whose access is the
# cluster's business, not the manifests': this identity is the least those commands need
# (list nodes, list pods: tests/integration/test_apiserver_rbac.py derives it from them).
OPERATOR_ACCESS: tuple[dict[str, Any], ...] = (
    {"apiVersion": "v1", "kind": "ServiceAccount",
     "metadata": {"name": "vpcnet-operator", "namespace": NAMESPACE}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
     "metadata": {"name": "vpcnet-operator-read"},
     "rules": [{"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
     "metadata": {"name": "vpcnet-operator-read"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                 "name": "vpcnet-operator-read"},
     "subjects": [{"kind": "ServiceAccount", "name": "vpcnet-operator",
                   "namespace": NAMESPACE}]},
)


@dataclass(frozen=True)
class Deployed:
    """What ``deploy_access`` applied: the config the manifests give every component and
    a token per component."""

    config: dict[str, str]  # the ConfigMap vpcnet-config
    tokens: dict[str, str]  # component -> its ServiceAccount's token


def render_base(directory: Path = BASE) -> list[dict[str, Any]]:
    """``kustomize build`` (or kubectl's built-in kustomize) of ``directory``."""
    kubectl = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    if kustomize := shutil.which("kustomize"):
        argv = [kustomize, "build", str(directory)]
    elif kubectl:
        argv = [kubectl, "kustomize", str(directory)]
    else:
        raise ControlPlaneError("neither kustomize nor kubectl found; run scripts/setup.sh")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise ControlPlaneError(f"kustomize build {directory} failed: {proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def deploy_access(endpoint: ApiServerEndpoint, token_seconds: int = 24 * 3600) -> Deployed:
    """Apply the access objects of manifests/base plus the operator's; mint the tokens."""
    docs = [d for d in render_base() if d["kind"] in ACCESS_KINDS]
    docs.sort(key=lambda d: ACCESS_KINDS.index(d["kind"]))  # the namespace first
    config: dict[str, str] = {}
    with endpoint.api_client() as api:
        for doc in [*docs, *OPERATOR_ACCESS]:
            k8s_utils.create_from_dict(api, doc)  # type: ignore[no-untyped-call]
            if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "vpcnet-config":
                config = {str(k): str(v) for k, v in doc["data"].items()}
        core = k8s.CoreV1Api(api)
        for ns in ("default", NAMESPACE):
            account = k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="default"))
            core.create_namespaced_service_account(ns, account)
    if not config:
        raise ControlPlaneError(f"{BASE} renders no ConfigMap vpcnet-config")
    tokens = {
        component: endpoint.service_account_token(
            NAMESPACE, account, expiration_seconds=token_seconds
        )
        for component, account in COMPONENT_ACCOUNTS.items()
    }
    return Deployed(config=config, tokens=tokens)
