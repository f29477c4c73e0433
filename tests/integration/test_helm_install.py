"""`helm install` of the chart into a real kube-apiserver (tests/fixtures/apiserver.py), as
the admin through a kubeconfig, then every object read back from the apiserver and held to
the kustomize base's: each field the base sets is stored with the base's value (the
apiserver adds its defaults, status and metadata; Helm adds its labels and annotations).

The apiserver is shared by the test session, and it runs no kube-controller-manager, so a
deleted Namespace stays Terminating: the release goes to a namespace of its own
(`namespace.name`, with `eventNamespace` the same), and the base is compared relocated
there - the one value this changes, checked in the unit tests to move nothing else.
The six cluster-scoped objects (ClusterRoles and their bindings) have fixed names; where
another test already applied the kustomize base, the install adopts them
(`--take-ownership`) and the teardown puts them back as they were."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from tests.fixtures.apiserver import ApiServer
from tests.fixtures.helm import CHART, Helm, build_helm
from tests.unit.helm_compare import HELM_LABELS, Key, by_key, differences
from tests.unit.manifests_render import BASE, render

RELEASE = "vpcnet"
RELEASE_NAMESPACE = "default"  # where Helm keeps the release record (a Secret)
NAMESPACE = "vpcnet-helm"  # the session's apiserver is new: no earlier run left it Terminating
INSTALL_VALUES = ("--set", f"namespace.name={NAMESPACE}", "--set", f"eventNamespace={NAMESPACE}")


def relocated(doc: dict[str, Any]) -> dict[str, Any]:
    """A kustomize base object as it is with the chart's vpcnet-system and default
    (Events) namespaces both set to NAMESPACE: also in the two places the namespace is
    part of a string, the agents' URL of the credential issuer's Service and the agents'
    ServiceAccount the issuer accepts tokens of."""
    doc = copy.deepcopy(doc)
    meta = doc["metadata"]
    if doc["kind"] == "Namespace":
        meta["name"] = NAMESPACE
    if "namespace" in meta:
        meta["namespace"] = NAMESPACE
    for subject in doc.get("subjects", []):
        subject["namespace"] = NAMESPACE
    if meta["name"] == "vpcnet-config":
        doc["data"]["VPCNET_LEASE_NAMESPACE"] = doc["data"]["VPCNET_EVENT_NAMESPACE"] = NAMESPACE
    if (doc["kind"], meta["name"]) == ("DaemonSet", "vpcnet-agent"):
        for var in doc["spec"]["template"]["spec"]["containers"][0]["env"]:
            if var["name"] == "VPCNET_AGENT_CREDENTIALS_URL":
                var["value"] = var["value"].replace(".vpcnet-system.svc:", f".{NAMESPACE}.svc:")
    if (doc["kind"], meta["name"]) == ("Deployment", "vpcnet-credentials"):
        container = doc["spec"]["template"]["spec"]["containers"][0]
        container["args"] = [
            f"--agent-service-account={NAMESPACE}/vpcnet-agent"
            if a == "--agent-service-account=vpcnet-system/vpcnet-agent"
            else a
            for a in container["args"]
        ]
    return doc


BASE_OBJECTS = by_key(tuple(relocated(d) for d in render(BASE)))
CLUSTER_SCOPED = sorted(k for k in BASE_OBJECTS if k[0] in ("ClusterRole", "ClusterRoleBinding"))
# Labels the apiserver itself sets (on every Namespace, since Kubernetes 1.21).
SERVER_LABELS = {"kubernetes.io/metadata.name"}
# Metadata the apiserver owns: dropped to create an object again from what it returned.
SERVER_METADATA = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(build_helm(), tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def kubeconfig(kube_apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The admin's kubeconfig, as `kubectl` and `helm` read it (static token, the test CA)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {
                    "server": kube_apiserver.url,
                    "certificate-authority": kube_apiserver.ca_file,
                },
            }
        ],
        "users": [{"name": "admin", "user": {"token": kube_apiserver.admin_token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        "current-context": "test",
    }
    path = tmp_path_factory.mktemp("kubeconfig") / "config"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def dynamic(kube_apiserver: ApiServer) -> Iterator[DynamicClient]:
    with kube_apiserver.api_client() as api:
        yield DynamicClient(api)  # type: ignore[no-untyped-call]


def stored(dynamic: DynamicClient, object_key: Key, api_version: str) -> dict[str, Any] | None:
    """The object as the apiserver holds it, or None."""
    kind, namespace, name = object_key
    resource = dynamic.resources.get(api_version=api_version, kind=kind)
    try:
        obj = resource.get(name=name, namespace=namespace or None)
    except NotFoundError:
        return None
    found: dict[str, Any] = obj.to_dict()
    return found


@pytest.fixture(scope="module")
def installed(helm: Helm, kubeconfig: Path, dynamic: DynamicClient) -> Iterator[None]:
    found = {k: stored(dynamic, k, BASE_OBJECTS[k]["apiVersion"]) for k in CLUSTER_SCOPED}
    earlier = {k: obj for k, obj in found.items() if obj is not None}
    adopt = ["--take-ownership"] if earlier else []
    proc = helm.run(
        "install", RELEASE, str(CHART), "--namespace", RELEASE_NAMESPACE, *INSTALL_VALUES, *adopt,
        kubeconfig=kubeconfig, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield
    # Not --wait: the Namespace stays Terminating (no namespace controller here).
    proc = helm.run(
        "uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, kubeconfig=kubeconfig, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for (kind, _, _), obj in earlier.items():
        for field in SERVER_METADATA:
            obj["metadata"].pop(field, None)
        dynamic.resources.get(api_version=obj["apiVersion"], kind=kind).create(body=obj)


@pytest.mark.parametrize("object_key", sorted(BASE_OBJECTS), ids="/".join)
def test_installed_object_holds_every_field_of_the_kustomize_one(
    installed: None, dynamic: DynamicClient, object_key: Key
) -> None:
    base = BASE_OBJECTS[object_key]
    found = stored(dynamic, object_key, base["apiVersion"])
    assert found is not None, f"{'/'.join(object_key)} is not in the apiserver"
    problems = list(differences(base, found, extra_ok=True))
    assert not problems, "\n".join(problems)
    # Of its own, Helm adds only its three labels and its two ownership annotations.
    labels = found["metadata"]["labels"]
    added = set(labels) - set(base["metadata"].get("labels", {})) - SERVER_LABELS
    assert added == set(HELM_LABELS)
    annotations = found["metadata"]["annotations"]
    assert annotations["meta.helm.sh/release-name"] == RELEASE
    assert annotations["meta.helm.sh/release-namespace"] == RELEASE_NAMESPACE


def test_release_is_deployed_with_exactly_the_base_objects(
    helm: Helm, kubeconfig: Path, installed: None
) -> None:
    namespace = ("--namespace", RELEASE_NAMESPACE)
    proc = helm.run("status", RELEASE, *namespace, "-o", "json", kubeconfig=kubeconfig)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["info"]["status"] == "deployed"
    proc = helm.run("get", "manifest", RELEASE, *namespace, kubeconfig=kubeconfig)
    assert proc.returncode == 0, proc.stderr
    manifest = tuple(d for d in yaml.safe_load_all(proc.stdout) if d)
    assert sorted(by_key(manifest)) == sorted(BASE_OBJECTS)


def test_upgrade_to_prefix_mode_reaches_the_stored_configmap(
    helm: Helm, kubeconfig: Path, installed: None, kube_apiserver: ApiServer
) -> None:
    def mode() -> str:
        with kube_apiserver.api_client() as api:
            cm = k8s.CoreV1Api(api).read_namespaced_config_map("vpcnet-config", NAMESPACE)
        assert cm.data is not None
        value: str = cm.data["VPCNET_MODE"]
        return value

    assert mode() == "warm"
    upgrade = ("upgrade", RELEASE, str(CHART), "--namespace", RELEASE_NAMESPACE, *INSTALL_VALUES)
    try:
        proc = helm.run(*upgrade, "--set", "mode=prefix", kubeconfig=kubeconfig, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert mode() == "prefix"
    finally:
        # Back to the defaults, so every test of this module sees the base.
        proc = helm.run(*upgrade, kubeconfig=kubeconfig, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert mode() == "warm"


def test_install_with_an_unknown_ip_family_fails_and_creates_nothing(
    helm: Helm, kubeconfig: Path, dynamic: DynamicClient
) -> None:
    namespace = f"{NAMESPACE}-ipv5"
    proc = helm.run(
        "install", "vpcnet-ipv5", str(CHART), "--namespace", RELEASE_NAMESPACE,
        "--set", "ipFamily=ipv5", "--set", f"namespace.name={namespace}",
        kubeconfig=kubeconfig, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    assert 'ipFamily "ipv5" is not one of ipv4, ipv6, dual' in proc.stderr
    listed = helm.run(
        "list", "--all", "--namespace", RELEASE_NAMESPACE, "-o", "json", kubeconfig=kubeconfig
    )
    assert listed.returncode == 0, listed.stderr
    assert "vpcnet-ipv5" not in {r["name"] for r in json.loads(listed.stdout)}
    assert stored(dynamic, ("Namespace", "", namespace), "v1") is None
