"""The Helm chart (manifests/helm/vpcnet) against the kustomize base: with default values
it renders the same objects, field for field, except Helm's own three labels; its values
reach the objects they name; values vpcnet does not implement fail the render with a
message; `helm lint` passes and every rendering validates against the Kubernetes schemas.

helm is the real one, built from helm.sh/helm/v3 by scripts/build-helm.sh."""

from __future__ import annotations

import copy
import tarfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.fixtures.helm import CHART, Helm, HelmFailed, build_helm
from tests.unit.helm_compare import HELM_LABELS, Key, by_key, differences, key, without_helm_labels
from tests.unit.manifests_render import BASE, OVERLAYS, find, pod_spec, render, workloads
from tests.unit.test_manifests import K8S_VERSIONS, containers
from tests.unit.test_metrics_dashboard import scrape_problems, served_metrics_ports
from vpcnet.settings import AgentSettings, Settings

EXTERNAL_REDIS = next(o for o in OVERLAYS if o.name == "external-redis")


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(build_helm(), tmp_path_factory.mktemp("helm-home"))


def assert_same_objects(
    kustomized: tuple[dict[str, Any], ...], chart: tuple[dict[str, Any], ...]
) -> None:
    base_objects, chart_objects = by_key(kustomized), by_key(chart)
    assert sorted(chart_objects) == sorted(base_objects)
    problems = [
        f"{'/'.join(k)} {d}"
        for k, doc in base_objects.items()
        for d in differences(doc, without_helm_labels(chart_objects[k]))
    ]
    assert not problems, "\n".join(problems)


# --- one source of truth: the chart's defaults are the kustomize base -------------------


def test_default_render_has_exactly_the_base_objects(helm: Helm) -> None:
    assert sorted(by_key(helm.template())) == sorted(by_key(render(BASE)))


@pytest.mark.parametrize("object_key", sorted(by_key(render(BASE))), ids="/".join)
def test_default_object_equals_the_kustomize_one(helm: Helm, object_key: Key) -> None:
    """Field for field: RBAC rules, images, args, env, volumes, securityContext, ports,
    probes, resources, labels and annotations - everything but HELM_LABELS."""
    base = by_key(render(BASE))[object_key]
    chart = without_helm_labels(by_key(helm.template())[object_key])
    problems = list(differences(base, chart))
    assert not problems, "\n".join(problems)


def test_helm_labels_are_the_only_normalisation(helm: Helm) -> None:
    """Every chart object carries Helm's labels (so dropping them is all the comparison
    forgives), and no selector or pod template does (they must stay the base's)."""
    for doc in helm.template():
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm", key(doc)
        assert labels["app.kubernetes.io/instance"] == "vpcnet", key(doc)
        assert labels["helm.sh/chart"] == "vpcnet-0.1.0", key(doc)
    for w in workloads(helm.template()):
        for labels in (
            w["spec"]["selector"]["matchLabels"],
            w["spec"]["template"]["metadata"]["labels"],
        ):
            assert not set(HELM_LABELS) & set(labels), key(w)


def test_comparison_catches_a_changed_field(helm: Helm) -> None:
    """The comparison can fail: one changed capability in the chart's render is reported."""
    chart = copy.deepcopy(helm.template())
    agent = next(d for d in chart if d["kind"] == "DaemonSet")
    pod_spec(agent)["containers"][0]["securityContext"]["capabilities"]["add"].append("SYS_PTRACE")
    with pytest.raises(AssertionError, match=r"capabilities\.add"):
        assert_same_objects(render(BASE), chart)


def test_external_redis_equals_the_external_redis_overlay(helm: Helm) -> None:
    assert_same_objects(
        render(EXTERNAL_REDIS), helm.template({"redis": {"inCluster": {"enabled": False}}})
    )


# --- helm lint and the Kubernetes schemas ----------------------------------------------


def test_helm_lint_passes(helm: Helm) -> None:
    proc = helm.run("lint", "--strict", str(CHART))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


def test_helm_lint_fails_on_a_value_the_schema_refuses(helm: Helm) -> None:
    proc = helm.run("lint", "--strict", str(CHART), "--set", "warm.ipTraget=3")
    assert proc.returncode != 0
    assert "additional properties 'ipTraget' not allowed" in proc.stdout


def test_helm_lint_reports_the_fail_of_an_unimplemented_value(helm: Helm) -> None:
    """helm lint runs templates with `fail` turned into an INFO line, by design (it lints
    the chart, not one set of values): the message is there, and `helm template` and
    `helm install` do fail on it (below, and tests/integration/test_helm_install.py)."""
    proc = helm.run("lint", "--strict", str(CHART), "--set", "ipFamily=ipv5")
    assert '[INFO] Fail: ipFamily "ipv5" is not one of ipv4, ipv6, dual' in proc.stderr


NON_DEFAULT = {
    "mode": "prefix",
    "namespace": {"name": "cni"},
    "workers": {"iamRoleArn": "arn:aws:iam::444455556666:role/team-vpcnet", "replicas": 3},
    "image": {"repository": "registry.example/vpcnet", "tag": "1.2.3", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "registry"}],
    "flower": {"enabled": False},
    "redis": {"inCluster": {"storage": {"storageClassName": "gp3"}}},
}


@pytest.mark.parametrize(
    "values",
    [{}, NON_DEFAULT, {"credentials": {"enabled": False}}],
    ids=["default", "non-default", "no-credential-issuer"],
)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_rendered_object_validates_strictly(
    helm: Helm, values: dict[str, Any], version: str
) -> None:
    docs = helm.template(values)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


# --- values reach the objects -----------------------------------------------------------


def config(docs: tuple[dict[str, Any], ...], namespace: str = "vpcnet-system") -> dict[str, str]:
    data: dict[str, str] = by_key(docs)[("ConfigMap", namespace, "vpcnet-config")]["data"]
    return data


def test_mode_and_warm_targets_reach_the_configmap_and_parse_as_settings(helm: Helm) -> None:
    docs = helm.template({"mode": "prefix", "warm": {"prefixTarget": 2, "ipTarget": 1000000}})
    data = config(docs)
    assert data["VPCNET_MODE"] == "prefix"
    assert data["VPCNET_WARM_IP_TARGET"] == "1000000"  # a YAML number, never "1e+06"
    settings = Settings.from_env(data)
    assert (settings.mode, settings.warm_prefix_target, settings.warm_ip_target) == (
        "prefix",
        2,
        1000000,
    )


@pytest.mark.parametrize("family", ["ipv4", "ipv6", "dual"])
def test_ip_family_reaches_the_configmap_the_settings_and_install_cni(helm: Helm, family: str) -> None:
    docs = helm.template({"ipFamily": family})
    data = config(docs)
    assert data["VPCNET_IP_FAMILY"] == family
    assert Settings.from_env(data).ip_family == family
    # The init container reads it (install-cni sets the IPv6 sysctls on ipv6/dual).
    agent = next(d for d in docs if d["kind"] == "DaemonSet")
    init = agent["spec"]["template"]["spec"]["initContainers"][0]
    assert init["name"] == "install-cni"
    assert {"configMapRef": {"name": "vpcnet-config"}} in init["envFrom"]
    # The launcher's fast path asks the agent at the socket the conflist names.
    assert f"--agent-socket={data['VPCNET_AGENT_SOCKET_PATH']}" in init["args"]


def test_default_configmap_is_valid_settings(helm: Helm) -> None:
    data = config(helm.template())
    settings = Settings.from_env(data)
    agent = AgentSettings.from_env({**data, "VPCNET_AGENT_NODE_NAME": "ip-10-0-0-1"})
    assert settings.cluster_name == agent.cluster_name == "my-cluster"


def test_workers_iam_role_is_the_irsa_annotation_of_their_service_account_only(helm: Helm) -> None:
    arn = "arn:aws:iam::444455556666:role/team-vpcnet"
    docs = helm.template({"workers": {"iamRoleArn": arn}})
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    assert (
        accounts["vpcnet-workers"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == arn
    )
    for name, sa in accounts.items():
        if name != "vpcnet-workers":
            assert "annotations" not in sa["metadata"], name
    workers = find(docs, "Deployment", "vpcnet-workers")
    assert pod_spec(workers)["serviceAccountName"] == "vpcnet-workers"


def test_image_reaches_every_vpcnet_container_and_not_redis(helm: Helm) -> None:
    docs = helm.template(NON_DEFAULT)
    seen = 0
    for w in workloads(docs):
        spec = pod_spec(w)
        assert spec["imagePullSecrets"] == [{"name": "registry"}], key(w)
        for c in containers(spec):
            if w["metadata"]["name"] == "vpcnet-redis":
                assert c["image"] == "redis:7.4.2-alpine"
                continue
            assert (c["image"], c["imagePullPolicy"]) == ("registry.example/vpcnet:1.2.3", "Always")
            seen += 1
    # watcher, worker, scan-worker, beat, credentials, install-cni, agent (flower disabled)
    assert seen == 7


def test_resources_per_component(helm: Helm) -> None:
    small = {"requests": {"cpu": "1m", "memory": "1Mi"}, "limits": {"memory": "2Mi"}}
    docs = helm.template(
        {
            "watcher": {"resources": small},
            "agent": {"installCni": {"resources": {**small, "limits": {"memory": "3Mi"}}}},
        }
    )
    assert (
        pod_spec(find(docs, "Deployment", "vpcnet-watcher"))["containers"][0]["resources"] == small
    )
    agent = pod_spec(find(docs, "DaemonSet", "vpcnet-agent"))
    assert agent["initContainers"][0]["resources"]["limits"] == {"memory": "3Mi"}
    # The other components keep the base's.
    base_workers = pod_spec(find(render(BASE), "Deployment", "vpcnet-workers"))["containers"][0]
    chart_workers = pod_spec(find(docs, "Deployment", "vpcnet-workers"))["containers"][0]
    assert chart_workers["resources"] == base_workers["resources"]


def test_metrics_ports_reach_the_scrape_annotations(helm: Helm) -> None:
    docs = helm.template({"workers": {"metricsPort": 9901, "scan": {"metricsPort": 9903, "replicas": 3}}})
    assert scrape_problems(docs) == []
    assert served_metrics_ports(find(docs, "Deployment", "vpcnet-workers")) == {"worker": {"9901"}}
    scan = find(docs, "Deployment", "vpcnet-scan-workers")
    assert served_metrics_ports(scan) == {"scan-worker": {"9903"}} and scan["spec"]["replicas"] == 3


def test_namespace_moves_every_object_and_the_lease_with_it(helm: Helm) -> None:
    docs = helm.template(NON_DEFAULT)
    for doc in docs:
        if doc["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            continue
        expected = "default" if doc["metadata"]["name"] == "vpcnet-node-events" else "cni"
        assert doc["metadata"]["namespace"] == expected, key(doc)
    assert (
        by_key(docs)[("Namespace", "", "cni")]["metadata"]["labels"][
            "pod-security.kubernetes.io/enforce"
        ]
        == "privileged"
    )
    assert config(docs, "cni")["VPCNET_LEASE_NAMESPACE"] == "cni"
    subjects = [s for d in docs if "subjects" in d for s in d["subjects"]]
    assert subjects and all(s["namespace"] == "cni" for s in subjects)


def test_lease_name_is_the_one_rbac_grants(helm: Helm) -> None:
    docs = helm.template({"leaseName": "other-lease"})
    role = by_key(docs)[("Role", "vpcnet-system", "vpcnet-watcher-leader-election")]
    named = [r for r in role["rules"] if "resourceNames" in r]
    assert named[0]["resourceNames"] == ["other-lease"]
    assert config(docs)["VPCNET_LEASE_NAME"] == "other-lease"


def test_env_reaches_the_configmap(helm: Helm) -> None:
    docs = helm.template({"env": {"VPCNET_AGENT_MTU": "1500", "VPCNET_RATE_LIMIT_SHARE": 0.5}})
    assert (config(docs)["VPCNET_AGENT_MTU"], config(docs)["VPCNET_RATE_LIMIT_SHARE"]) == (
        "1500",
        "0.5",
    )
    # Keys not overridden keep their defaults.
    assert config(docs)["VPCNET_AGENT_SNAT"] == "true"


# --- bad values fail the render, with a message, and render nothing ---------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ipFamily": "ipv5"}, 'ipFamily "ipv5" is not one of ipv4, ipv6, dual'),
        ({"mode": "turbo"}, 'mode "turbo" is not one of full, warm, prefix'),
        ({"redis": {"sentinel": {"enabled": True}}}, "Redis Sentinel is not implemented"),
        ({"clusterName": ""}, "clusterName is required"),
        ({"workers": {"iamRoleArn": ""}}, "workers.iamRoleArn is required"),
        ({"env": {"VPCNET_MODE": "prefix"}}, "env.VPCNET_MODE is set by its own value"),
        ({"env": {"VPCNET_REDIS_URL": "redis://x"}}, "Redis URLs carry passwords"),
        ({"env": {"AWS_REGION": "eu-west-1"}}, "only VPCNET_\\* settings belong in env"),
    ],
    ids=[
        "ip-family",
        "mode",
        "sentinel",
        "cluster-name",
        "iam-role",
        "owned-env",
        "credentials",
        "foreign-env",
    ],
)
def test_bad_values_fail_with_a_clear_message(
    helm: Helm, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmFailed, match=message):
        helm.template(values)


def test_a_failed_render_prints_no_object(helm: Helm) -> None:
    """Nothing half-rendered for `kubectl apply` to pick up: stdout is empty."""
    proc = helm.run("template", "vpcnet", str(CHART), "--set", "ipFamily=ipv5")
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert 'ipFamily "ipv5" is not one of ipv4, ipv6, dual' in proc.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"warm": {"ipTraget": 3}}, "ipTraget"),  # a misspelt value is an error, not ignored
        ({"warm": {"ipTarget": "five"}}, "ipTarget"),
        ({"watcher": {"metricsPort": 70000}}, "metricsPort"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ],
    ids=["misspelt", "not-a-number", "port-range", "pull-policy"],
)
def test_values_schema_refuses_unknown_names_and_wrong_types(
    helm: Helm, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmFailed, match=message):
        helm.template(values)


def test_namespace_create_false_leaves_the_namespace_to_the_installer(helm: Helm) -> None:
    """For `helm install --create-namespace` or a namespace the platform manages (it must
    then admit privileged pods itself, see templates/namespace.yaml)."""
    docs = helm.template({"namespace": {"create": False}})
    assert "Namespace" not in {d["kind"] for d in docs}
    assert len(docs) == len(render(BASE)) - 1


def test_packaged_chart_carries_the_dashboard_and_renders_the_same(
    helm: Helm, tmp_path: Path
) -> None:
    """files/grafana-dashboard.json is a link to the base's file (one copy in the repo);
    `helm package` stores its content, so a chart pulled from a registry has it too."""
    proc = helm.run("package", str(CHART), "--destination", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    archive = tmp_path / "vpcnet-0.1.0.tgz"
    with tarfile.open(archive) as tar:
        member = tar.getmember("vpcnet/files/grafana-dashboard.json")
        assert member.isfile()
        packed = tar.extractfile(member)
        assert packed is not None
        assert packed.read() == (BASE / "grafana-dashboard.json").read_bytes()
    proc = helm.run("template", "vpcnet", str(archive))
    assert proc.returncode == 0, proc.stderr
    assert tuple(d for d in yaml.safe_load_all(proc.stdout) if d) == helm.template()
